"""Running the app: in this process, or in several worker processes sharing one port.

One process serves every caller on one event loop, and that loop is what caps how many
real-time callers one process holds (see ``docs/performance.md``). With ``workers`` above 1,
uvicorn's supervisor starts that many processes on the same listening socket and replaces
any that dies. The workers share limits and browser tokens through Redis (the settings
insist on it), call records and keys through the database (an SQLite file in WAL mode, or
the PostgreSQL that several nodes share), and Prometheus metrics through prometheus_client's
multiprocess files, so that ``/metrics`` on any worker reports the whole server.
"""

from __future__ import annotations

import json
import logging
import logging.config
import math
import os
import socket
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

from voxline.config import Settings
from voxline.server.app import create_app
from voxline.server.capacity import HTTP_HEADROOM, default_max_connections, raise_open_file_limit
from voxline.server.connections import HttpProtocol, WebSocketProtocol
from voxline.server.metrics import MULTIPROCESS_DIR_VARIABLE
from voxline.server.redaction import log_config
from voxline.server.startup import bind_socket, check_settings, local_url
from voxline.store.database import Database

WS_MAX_BYTES: Final = 1024 * 1024
"""Above the protocol's own limits, which close with 1009 themselves."""
MAX_REQUEST_HEAD_BYTES: Final = 64 * 1024
"""The request line and headers together; a larger head is refused with 400 and closed."""
_HANDOVER_VARIABLE: Final = "_VOXLINE_WORKER_SETTINGS"
"""Carries the parent's settings to the workers, which uvicorn starts afresh (spawned)."""


def configure_logging(level: str) -> None:
    logging.config.dictConfig(log_config(level))


def run_server(
    settings: Settings,
    *,
    log_level: str = "info",
    on_started: Callable[[], None] = lambda: None,
) -> None:
    """Serve ``settings`` until interrupted, in ``settings.workers`` processes.

    The files the settings name and the port are checked first: a mistake there raises
    :class:`~voxline.server.startup.StartupError` before anything loads. ``on_started`` is
    called once the port is bound and the models are loaded (with several processes, once
    the first of them answers). SIGTERM or SIGINT drains each process first (see
    :mod:`voxline.server.shutdown`); what is still running ``shutdown_grace_seconds`` later
    is cancelled.
    """
    check_settings(settings)
    configure_logging(log_level)
    max_connections = _max_connections(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        # websockets' Sans-I/O core under uvicorn's own protocol: receiving a 20 ms frame
        # costs 20 us against 32 us with the legacy protocol (which uvicorn deprecates).
        # Ours adds a bound on clients that stop reading.
        "ws": WebSocketProtocol,
        "ws_max_size": WS_MAX_BYTES,
        # Audio hardly compresses; deflating each 20 ms frame made receiving it cost 1.5x.
        "ws_per_message_deflate": False,
        # h11, not httptools: httptools takes headers of any size, h11 caps the request head
        # (and ours bounds the time it may take).
        "http": HttpProtocol,
        "h11_max_incomplete_event_size": MAX_REQUEST_HEAD_BYTES,
        # X-Forwarded-For and -Proto only from the proxies configured; uvicorn's default
        # would trust them from any local process.
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies or None,
        "log_config": log_config(log_level),
        "log_level": log_level,
        "loop": "uvloop" if os.name != "nt" else "asyncio",
        "limit_concurrency": max_connections + HTTP_HEADROOM,
        "timeout_graceful_shutdown": math.ceil(settings.shutdown_grace_seconds),
    }
    with bind_socket(settings.host, settings.port) as sock:
        if settings.workers == 1:
            app = create_app(settings, max_connections=max_connections)
            server = _Server(uvicorn.Config(app, **options), on_started)
            server.run(sockets=[sock])
            return
        _run_workers(settings, options, sock, max_connections, on_started)


def _run_workers(
    settings: Settings,
    options: dict[str, Any],
    sock: socket.socket,
    max_connections: int,
    on_started: Callable[[], None],
) -> None:
    Database(settings.database).close()  # migrate once, before the workers start
    config = uvicorn.Config(
        f"{__name__}:worker_app", factory=True, workers=settings.workers, **options
    )
    served = threading.Event()
    announcer = threading.Thread(
        target=_call_when_serving,
        args=(local_url(settings.host, settings.port), on_started, served),
        daemon=True,
    )
    with tempfile.TemporaryDirectory(prefix="voxline-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        os.environ[_HANDOVER_VARIABLE] = json.dumps(
            {
                "settings": settings.model_dump(mode="json"),
                "log_level": options["log_level"],
                "max_connections": max_connections,
                "boot": uuid.uuid4().hex,
            }
        )
        try:
            announcer.start()
            Multiprocess(config, sockets=[sock]).run()
        finally:
            served.set()
            del os.environ[MULTIPROCESS_DIR_VARIABLE], os.environ[_HANDOVER_VARIABLE]


class _Server(uvicorn.Server):
    """uvicorn's server, telling ``on_started`` once it listens with its app started."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def _call_when_serving(url: str, on_started: Callable[[], None], done: threading.Event) -> None:
    """Call ``on_started`` once a worker at ``url`` answers (its app has started)."""
    while not done.wait(0.2):
        try:  # urllib: httpx would log every attempt
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                on_started()
                return
        except OSError:
            pass


def worker_app() -> Starlette:
    """The app of one worker process, from the settings its parent handed over."""
    handover = json.loads(os.environ[_HANDOVER_VARIABLE])
    configure_logging(handover["log_level"])
    return create_app(
        Settings.model_validate(handover["settings"]),
        max_connections=handover["max_connections"],
        boot=handover["boot"],
    )


def _max_connections(settings: Settings) -> int:
    """The WebSockets each process holds, its open-file limit raised first (the workers
    inherit it)."""
    open_files = raise_open_file_limit()
    if settings.max_connections is not None:
        return settings.max_connections
    return default_max_connections(open_files)
