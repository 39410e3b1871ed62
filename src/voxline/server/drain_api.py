"""``/admin/drain``: take a node out of service without cutting a call.

``POST`` stops the node admitting sessions, in every one of its processes, and fails its
readiness so that a load balancer sends new callers elsewhere; live calls go on to their
natural end. ``GET`` tells how far the drain has come: the node's calls still open. Once
none is, stop the node (SIGTERM). Both need the operator scope ``server:drain``.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voxline.auth.keys import SCOPE_SERVER_DRAIN
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.rest import bearer_key
from voxline.server.services import Services
from voxline.state.backend import StateUnavailable


async def start_drain(request: Request) -> Response:
    key = await bearer_key(request, SCOPE_SERVER_DRAIN)
    if isinstance(key, Rejection):
        return error_response(key)
    services: Services = request.app.state.services
    try:
        await services.request_drain()
    except StateUnavailable:
        return error_response(
            Rejection(
                "service_unavailable",
                "this process is draining, but the node's other processes cannot be told",
                5,
            )
        )
    return await _status(services, status_code=202)


async def drain_status(request: Request) -> Response:
    key = await bearer_key(request, SCOPE_SERVER_DRAIN)
    if isinstance(key, Rejection):
        return error_response(key)
    return await _status(request.app.state.services)


async def _status(services: Services, *, status_code: int = 200) -> Response:
    open_calls = await asyncio.to_thread(services.calls.open_on_node)
    return JSONResponse(
        {
            "object": "drain",
            "node": services.settings.node,
            "draining": services.draining,
            "open_calls": open_calls,
        },
        status_code,
    )


drain_routes = [
    Route("/admin/drain", start_drain, methods=["POST"]),
    Route("/admin/drain", drain_status, methods=["GET"]),
]
