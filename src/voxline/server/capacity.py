"""How many connections a process takes: its open-file limit, and a clean refusal beyond.

Every connection holds a file descriptor. A process that runs out of them fails silently:
``accept`` errors, and even ``/healthz`` stops answering. So the soft limit is raised to the
hard one at start, and connections are capped below it: WebSocket handshakes beyond
``max_connections`` open sockets are refused here with HTTP 503 (uvicorn's own
``limit_concurrency`` does not apply to upgrades), and uvicorn answers any request with 503
beyond a few more, which keeps the health endpoints answering while sockets are full.
"""

from __future__ import annotations

import logging
import resource

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from voxline.protocol.errors import Rejection

log = logging.getLogger(__name__)

#: Requests over uvicorn's cap beyond the sockets', so that health probes and the REST API
#: still get through when every socket is taken.
HTTP_HEADROOM = 32
#: Descriptors kept back from connections: the database, logs, models, Redis, child pipes.
_RESERVED_FDS = 128


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit (children inherit it); the
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
            return soft
        log.info("open-file limit raised from %d to %d", soft, hard)
        return hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(open_files: int) -> int:
    """The sockets a process with ``open_files`` descriptors can hold, with headroom."""
    return max(16, open_files - _RESERVED_FDS - HTTP_HEADROOM - open_files // 10)


class ConnectionCap:
    """ASGI middleware refusing WebSocket handshakes beyond ``limit`` open sockets with
    HTTP 503 ``service_unavailable`` and ``Retry-After``."""

    def __init__(self, app: ASGIApp, limit: int, *, retry_after_s: int = 5) -> None:
        self.app = app
        self.limit = limit
        self.open = 0
        self._refusal = Rejection(
            "service_unavailable", "the server is at its connection limit; try again shortly"
        )
        self._retry_after_s = retry_after_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.open >= self.limit:
            await receive()  # websocket.connect
            response = JSONResponse(
                self._refusal.http_body(),
                503,
                headers={"Retry-After": str(self._retry_after_s)},
            )
            await response(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
