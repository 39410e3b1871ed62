"""Request bodies bounded before they are read, for every HTTP route at once.

A body that declares a ``Content-Length`` over the limit is refused before any of it is
read; a chunked one is counted as it arrives and refused once it passes the limit. Either
way the answer is 413 with the protocol's error envelope (``message_too_large``), and the
connection is closed rather than drained. Every route's limit is :data:`MAX_BODY_BYTES` but
for the few paths given their own (audio uploads).
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
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        by_path: Mapping[str, int] | None = None,
    ) -> None:
        """``by_path``: the limits of paths that have their own."""
        self.app = app
        self.max_bytes = max_bytes
        self.by_path = dict(by_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.by_path.get(scope["path"], self.max_bytes)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and parse_decimal(declared, 0, limit) is None:
            await self._refuse(limit, scope, receive, send)
            return
        received = 0
        responded = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
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
            await self._refuse(limit, scope, receive, send)

    async def _refuse(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            Rejection("message_too_large", f"request body over {limit} bytes", param="body")
        )
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
