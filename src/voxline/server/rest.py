"""What the REST routes share: the key a request comes with, admitted for a scope, and the
routes that run on the speech engines, each answered while it holds one of its key's slots."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from voxline.auth.keys import ApiKey
from voxline.limits.holding import held
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.services import Services

#: A route's work once its request is admitted: the request and the key it spends.
AudioHandler = Callable[[Request, ApiKey], Awaitable[Response]]


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def bearer_key(request: Request, scope: str | None) -> ApiKey | Rejection:
    """The key of the request's ``Authorization: Bearer`` secret, admitted for ``scope``
    (None: any key)."""
    services: Services = request.app.state.services
    key = await services.admission.bearer(
        request.headers.get("authorization", ""), scope=scope, address=_address(request)
    )
    if isinstance(key, Rejection):
        services.metrics.rejections.labels(key.code).inc()
    return key


class _HeldEndpoint:
    """An ASGI endpoint whose requests each hold one of their key's slots for the speech
    engines from admission until the answer's last byte is sent, or its client has gone (a
    streamed answer abandoned mid-way)."""

    def __init__(self, handler: AudioHandler, key_scope: str) -> None:
        self._handler = handler
        self._key_scope = key_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        services: Services = request.app.state.services
        admitted = await services.admission.audio_request(
            request.headers.get("authorization", ""),
            scope=self._key_scope,
            address=_address(request),
        )
        if isinstance(admitted, Rejection):
            services.metrics.rejections.labels(admitted.code).inc()
            await error_response(admitted)(scope, receive, send)
            return
        async with held(admitted.lease):
            response = await self._handler(request, admitted.key)
            try:
                await response(scope, receive, send)
            finally:
                # A stream whose client left stops where it was.
                body = getattr(response, "body_iterator", None)
                if isinstance(body, AsyncGenerator):
                    await body.aclose()


def audio_route(path: str, handler: AudioHandler, key_scope: str) -> Route:
    """``POST path``, for keys with ``key_scope``, answered by ``handler`` while the request
    holds one of its key's ``max_http_audio_requests_per_key`` slots."""
    return Route(path, _HeldEndpoint(handler, key_scope), methods=["POST"])
