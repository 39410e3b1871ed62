"""The ASGI app: the Omni socket, its REST companions, health and metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from voxline.auth.tokens import TokenRequestError, validate_token_request
from voxline.config import Settings
from voxline.protocol.errors import Rejection
from voxline.server.services import SESSION_SCOPE, Services
from voxline.transports.omni import omni_endpoint

MAX_BODY_BYTES = 16 * 1024


def _error(rejection: Rejection) -> JSONResponse:
    headers = {}
    if rejection.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(rejection.retry_after)))
    return JSONResponse(rejection.http_body(), rejection.kind.http_status, headers=headers)


def _ws_url(request: Request, settings: Settings) -> str:
    base = settings.public_url or str(request.base_url)
    base = base.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}/v1/omni"


async def create_session_token(request: Request) -> Response:
    """``POST /v1/omni/sessions``: a short-lived, origin-locked browser token."""
    services: Services = request.app.state.services
    address = request.client.host if request.client else "unknown"
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _error(Rejection("unauthorized", "send Authorization: Bearer <secret key>"))
    blocked = await services.limits.check_auth_block(address)
    if blocked is not None:
        return _error(Rejection("rate_limit_exceeded", "too many failed authentications", blocked))
    key = await asyncio.to_thread(services.keys.authenticate, secret.strip())
    if key is None:
        await services.limits.record_auth_failure(address)
        return _error(Rejection("unauthorized", "invalid API key"))
    if not key.has_scope(SESSION_SCOPE):
        return _error(Rejection("forbidden", f"this key lacks the {SESSION_SCOPE} scope"))
    refused = await services.limits.check_connect(address, key.id)
    if refused is not None:
        return _error(refused)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _error(Rejection("invalid_request", "request body too large"))
    try:
        payload: Any = json.loads(body or b"{}")
        spec = validate_token_request(payload)
    except json.JSONDecodeError:
        return _error(Rejection("invalid_request", "request body must be JSON"))
    except TokenRequestError as exc:
        return _error(Rejection("invalid_request", str(exc), param=exc.param))
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
            "url": _ws_url(request, services.settings),
            "session_label": spec.session_label,
        }
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks = await services.readiness()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings, services: Services | None = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = services or Services(settings)
        await app.state.services.start()
        try:
            yield
        finally:
            await app.state.services.aclose()

    return Starlette(
        routes=[
            WebSocketRoute("/v1/omni", omni_endpoint),
            WebSocketRoute("/v2/omni/chat", omni_endpoint),
            Route("/v1/omni/sessions", create_session_token, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
