"""The browser client: the page at ``/``, its modules under ``/web/``, and ``POST /web/token``.

The page must never hold a secret key, so the server holds one for it (``web_key``) and
mints a short-lived browser token from it for each conversation, locked to the origin the
page was served from. A page elsewhere gets no token: browsers always send their own
``Origin`` with a POST. Clients outside a browser can claim any origin, though, so anyone
who can reach the endpoint can spend the page key's sessions: it is on only when configured,
and each client address may mint only ``page_tokens_per_minute_per_address`` tokens.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from voxline.auth.tokens import DEFAULT_TTL_SECONDS, TokenRequest, normalize_origin
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response, issue_token
from voxline.server.services import Services

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def is_own_origin(request: Request, origin: str) -> bool:
    """Whether ``origin`` is the one the page was served from: the public URL's if one is
    set, whatever the request's ``Host`` says; else the scheme and ``Host`` of this very
    request, which a client outside a browser can set to anything (as it can its
    ``Origin``): set ``public_url`` on a server reachable from the internet."""
    services: Services = request.app.state.services
    public_url = services.settings.public_url
    base = urlsplit(public_url) if public_url else request.base_url
    try:
        return normalize_origin(origin) == normalize_origin(f"{base.scheme}://{base.netloc}")
    except ValueError:
        return False


async def page_token(request: Request) -> Response:
    """``POST /web/token``: a browser token of the page key, for this server's own page."""
    services: Services = request.app.state.services
    web_key = services.settings.web_key
    if not web_key:
        return JSONResponse(
            {
                "error": {
                    "message": "the browser page is off: set web_key (VOXLINE_WEB_KEY) "
                    "or start the server with --print-key",
                    "type": "invalid_request_error",
                    "code": "web_page_disabled",
                    "param": None,
                }
            },
            404,
        )
    origin = request.headers.get("origin")
    if origin is None or not is_own_origin(request, origin):
        return error_response(
            Rejection("origin_not_allowed", "only this server's own page may get a page token")
        )
    address = request.client.host if request.client else "unknown"
    key = await services.admission.page(web_key, address=address)
    if isinstance(key, Rejection):
        return error_response(key)
    spec = TokenRequest(
        allowed_origins=[normalize_origin(origin)],
        ttl_seconds=DEFAULT_TTL_SECONDS,
        session_label=None,
    )
    return await issue_token(request, key, spec)


def web_routes() -> list[BaseRoute]:
    return [
        Route("/", index),
        Route("/web/token", page_token, methods=["POST"]),
        Mount("/web", StaticFiles(directory=WEB_DIR), name="web"),
    ]
