"""The ASGI app: the Omni socket, its REST companions, health and metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from voxline.admission import UNAVAILABLE_RETRY_AFTER_S
from voxline.auth.keys import SCOPE_CALLS_READ, SCOPE_CALLS_READ_ALL, SCOPE_SESSION, ApiKey
from voxline.auth.tokens import TokenRequestError, validate_token_request
from voxline.config import Settings
from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import Rejection
from voxline.server import agents_api, transcription_api
from voxline.server.account_api import account_routes
from voxline.server.body_limit import BodyLimit
from voxline.server.capacity import ConnectionCap
from voxline.server.drain_api import drain_routes
from voxline.server.issuing import error_response as _error
from voxline.server.issuing import issue_token
from voxline.server.nodes_api import nodes_routes
from voxline.server.rest import bearer_key
from voxline.server.services import Services
from voxline.server.shutdown import drain_on_signals
from voxline.server.speech_api import speech_routes
from voxline.server.transcription_api import transcription_routes
from voxline.server.voices_api import voice_routes
from voxline.server.web import web_routes
from voxline.state.backend import StateUnavailable
from voxline.store.calls import CallRecord
from voxline.store.database import DatabaseUnavailable
from voxline.transports.freeswitch import audio_stream
from voxline.transports.omni import omni_endpoint
from voxline.transports.services import CallServices
from voxline.transports.twilio import media_stream, voice_webhook

#: The transports reach the services through a protocol of their own; mypy checks here that
#: ``Services`` provides it.
_TRANSPORTS_SERVICES: type[CallServices] = Services


async def create_session_token(request: Request) -> Response:
    """``POST /v1/omni/sessions``: a short-lived, origin-locked browser token."""
    key = await bearer_key(request, SCOPE_SESSION)
    if isinstance(key, Rejection):
        return _error(key)
    body = await request.body()  # bounded by BodyLimit
    try:
        payload: Any = json.loads(body or b"{}")
        spec = validate_token_request(payload)
    except TokenRequestError as exc:
        return _error(Rejection("invalid_request", str(exc), param=exc.param))
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, absurd nesting or numbers
        return _error(Rejection("invalid_request", "request body must be JSON"))
    return await issue_token(request, key, spec)


def _readable_key_id(key: ApiKey) -> str | None:
    """Whose calls ``key`` may read: its own, or everyone's (None) with the operator scope."""
    return None if key.has_scope(SCOPE_CALLS_READ_ALL) else key.id


def _call_json(record: CallRecord) -> dict[str, Any]:
    return {"object": "call", **dataclasses.asdict(record)}


async def list_calls(request: Request) -> Response:
    """``GET /v1/calls?limit=N``: the most recent call records of the key's own sessions
    (``calls:read``), or of every key's (``calls:read_all``)."""
    services: Services = request.app.state.services
    key = await bearer_key(request, SCOPE_CALLS_READ)
    if isinstance(key, Rejection):
        return _error(key)
    limit = parse_decimal(request.query_params.get("limit", "50"), 1, 1000)
    if limit is None:
        return _error(Rejection("invalid_request", "limit must be 1-1000", param="limit"))
    records = await asyncio.to_thread(services.calls.recent, limit, key_id=_readable_key_id(key))
    return JSONResponse({"object": "list", "data": [_call_json(r) for r in records]})


async def get_call(request: Request) -> Response:
    services: Services = request.app.state.services
    key = await bearer_key(request, SCOPE_CALLS_READ)
    if isinstance(key, Rejection):
        return _error(key)
    # Another key's call is "no such call", as if it did not exist: ids do not leak.
    record = await asyncio.to_thread(
        services.calls.get, request.path_params["call_id"], key_id=_readable_key_id(key)
    )
    if record is None:
        return _error(Rejection("not_found", "no such call", param="call_id"))
    return JSONResponse(_call_json(record))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks = await services.readiness()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


async def _unavailable(request: Request, exc: Exception) -> Response:
    """A REST request whose work failed for want of the database or the shared state (a
    token minted as Redis drops): 503, to retry."""
    what = "its database" if isinstance(exc, DatabaseUnavailable) else "its shared state"
    return _error(
        Rejection(
            "service_unavailable",
            f"the server cannot reach {what} right now; try again shortly",
            UNAVAILABLE_RETRY_AFTER_S,
        )
    )


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    max_connections: int | None = None,
    boot: str | None = None,
) -> Starlette:
    """The app; ``max_connections`` caps its open WebSockets (unset: no cap); ``boot``
    names this start of the node, which all its worker processes share."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.services = running = services or Services(settings, boot=boot)
        await running.start()
        undo = drain_on_signals(running.drain)
        try:
            yield
        finally:
            undo()
            await running.aclose()

    return Starlette(
        routes=[
            WebSocketRoute("/v1/omni", omni_endpoint),
            WebSocketRoute("/v2/omni/chat", omni_endpoint),
            Route("/v1/omni/sessions", create_session_token, methods=["POST"]),
            Route("/v1/calls", list_calls),
            Route("/v1/calls/{call_id}", get_call),
            *agents_api.agent_routes(),
            Route("/twilio/voice", voice_webhook, methods=["POST"]),
            WebSocketRoute("/twilio/media", media_stream),
            WebSocketRoute("/freeswitch/audio", audio_stream),
            *voice_routes(),
            *speech_routes(),
            *transcription_routes(),
            *account_routes(),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *drain_routes,
            *nodes_routes,
            Route("/metrics", metrics),
            *web_routes(),
        ],
        middleware=[
            Middleware(
                BodyLimit,
                routes={
                    agents_api.PATH: agents_api.MAX_BODY_BYTES,
                    transcription_api.PATH: transcription_api.MAX_UPLOAD_BYTES,
                },
            ),
            *(
                []
                if max_connections is None
                else [Middleware(ConnectionCap, limit=max_connections)]
            ),
        ],
        exception_handlers={DatabaseUnavailable: _unavailable, StateUnavailable: _unavailable},
        lifespan=lifespan,
    )
