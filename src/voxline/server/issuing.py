"""Browser tokens over HTTP, and HTTP errors: shared by ``POST /v1/omni/sessions`` (a backend
presenting its secret key) and ``POST /web/token`` (voxline's own page, on the server's page
key), so that both mint the same tokens and answer in the same shape."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse

from voxline.auth.keys import ApiKey
from voxline.auth.tokens import TokenRequest
from voxline.config import Settings
from voxline.protocol.errors import Rejection
from voxline.server.services import Services


def error_response(rejection: Rejection) -> JSONResponse:
    """The protocol's HTTP error envelope, with ``Retry-After`` when there is one."""
    headers = {}
    if rejection.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(rejection.retry_after)))
    return JSONResponse(rejection.http_body(), rejection.kind.http_status, headers=headers)


def ws_url(request: Request, settings: Settings) -> str:
    """This server's realtime socket URL, as a client outside should reach it."""
    base = settings.public_url or str(request.base_url)
    base = base.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/v1/omni"


async def issue_token(request: Request, key: ApiKey, spec: TokenRequest) -> JSONResponse:
    """Mints a browser token of ``key`` as ``spec`` asks: ``{object: "omni.session", …}``."""
    services: Services = request.app.state.services
    minted = await services.tokens.mint(
        key,
        allowed_origins=spec.allowed_origins,
        ttl_seconds=spec.ttl_seconds,
        session_label=spec.session_label,
    )
    return JSONResponse(
        {
            "object": "omni.session",
            "token": minted.token,
            "expires_at": minted.expires_at,
            "url": ws_url(request, services.settings),
            "session_label": spec.session_label,
        }
    )
