"""``GET /admin/nodes``: the nodes serving now, as they announce themselves.

Every server process announces itself in the shared state every few seconds (its node,
live sessions, capacity, whether it drains; see ``Services.presence``), and a process not
heard of for a few seconds is taken for dead, its seats freed. This lists what the
announcements say, grouped by node: with Redis, every node of the deployment; without,
this process alone. Needs the operator scope ``server:read`` (``server:drain`` grants it).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voxline.auth.keys import SCOPE_SERVER_READ
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.rest import bearer_key
from voxline.server.services import Services
from voxline.state.backend import StateUnavailable


async def list_nodes(request: Request) -> Response:
    key = await bearer_key(request, SCOPE_SERVER_READ)
    if isinstance(key, Rejection):
        return error_response(key)
    services: Services = request.app.state.services
    try:
        presences = await services.backend.presences()
    except StateUnavailable:
        return error_response(
            Rejection("service_unavailable", "the shared state cannot be reached", 5)
        )
    return JSONResponse({"object": "list", "data": nodes(presences)})


def nodes(presences: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Announcements grouped by node: each node's processes, sessions and capacity (None
    when a process of it has no cap), and whether any of its processes drains."""
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for process_id, presence in presences.items():
        by_node[str(presence.get("node"))].append({"process_id": process_id, **presence})
    listed = []
    for name in sorted(by_node):
        processes = sorted(by_node[name], key=lambda p: p["started_at"])
        caps: list[int | None] = [p.get("max_sessions") for p in processes]
        listed.append(
            {
                "object": "node",
                "node": name,
                "sessions": sum(p.get("sessions", 0) for p in processes),
                "max_sessions": None if None in caps else sum(c or 0 for c in caps),
                "draining": any(p.get("draining") for p in processes),
                "processes": [{k: v for k, v in p.items() if k != "node"} for p in processes],
            }
        )
    return listed


nodes_routes = [Route("/admin/nodes", list_nodes, methods=["GET"])]
