"""Request bodies bounded before they are read, for every HTTP route at once.

A body that declares a ``Content-Length`` over the limit is refused before any of it is
read; a chunked one is counted as it arrives and refused once it passes the limit. Either
way the answer is 413 with the protocol's error envelope (``message_too_large``), and the
connection is closed rather than drained. The limit is the same for every route but those
given one of their own (audio uploads; agent profiles, which may carry their knowledge).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response

MAX_BODY_BYTES: Final = 64 * 1024
"""Every route's bodies: a Twilio webhook is a few kilobytes, a token request less."""


class _BodyTooLarge(Exception):
    """Raised out of ``receive`` once a streamed body passes the limit."""


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413; ``routes`` maps
    a path to the limit of its requests and of those under it (``/v1/agents/…``)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, routes: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = dict(routes or {})

    def limit(self, path: str) -> int:
        """The body limit of requests to ``path``."""
        for prefix, limit in self.routes.items():
            if path == prefix or path.startswith(f"{prefix}/"):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and parse_decimal(declared, 0, max_bytes) is None:
            await self._refuse(scope, receive, send, max_bytes)
            return
        received = 0
        responded = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge
            return message

        async def watching_send(message: Message) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _BodyTooLarge:
            if responded:
                raise
            await self._refuse(scope, receive, send, max_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = error_response(
            Rejection("message_too_large", f"request body over {max_bytes} bytes", param="body")
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
