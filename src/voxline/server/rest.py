"""What the REST routes share: the key a request comes with, admitted for a scope."""

from __future__ import annotations

from starlette.requests import Request

from voxline.auth.keys import ApiKey
from voxline.protocol.errors import Rejection
from voxline.server.services import Services


async def bearer_key(request: Request, scope: str | None) -> ApiKey | Rejection:
    """The key of the request's ``Authorization: Bearer`` secret, admitted for ``scope``
    (None: any key)."""
    services: Services = request.app.state.services
    return await services.admission.bearer(
        request.headers.get("authorization", ""),
        scope=scope,
        address=request.client.host if request.client else "unknown",
    )
