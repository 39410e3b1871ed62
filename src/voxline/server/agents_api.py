"""``/v1/agents``: stored agent profiles over HTTP, as the public SDK (``PyAI.agents``) drives
them (docs/api.md, "Agents").

Every route acts for the owner of the request's key: another owner's agent is 404
``not_found``, like one that does not exist, so ids do not leak. Reading takes
``agents:read``, writing ``agents:write``. An update merges field by field.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from voxline.agents import profiles
from voxline.agents.profiles import ProfileError
from voxline.auth.keys import SCOPE_AGENTS_READ, SCOPE_AGENTS_WRITE, ApiKey
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.services import Services
from voxline.store.agents import MAX_AGENTS_PER_OWNER, TooManyAgents

PATH: Final = "/v1/agents"
MAX_BODY_BYTES: Final = 1024 * 1024
"""A profile's body: room for inline knowledge of a few thousand entries."""

_NOT_FOUND: Final = Rejection("not_found", "no such agent", param="agent_id")


async def _key(request: Request, scope: str) -> ApiKey | Rejection:
    services: Services = request.app.state.services
    return await services.admission.bearer(
        request.headers.get("authorization", ""),
        scope=scope,
        address=request.client.host if request.client else "unknown",
    )


async def _changes(request: Request, *, creating: bool) -> dict[str, Any] | Rejection:
    """The body's changes to a profile, checked (in a worker thread: inline knowledge is
    indexed to be checked)."""
    body = await request.body()  # bounded by BodyLimit
    try:
        payload: Any = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, absurd nesting or numbers
        return Rejection("invalid_request", "request body must be JSON")
    try:
        return await asyncio.to_thread(profiles.changes, payload, creating=creating)
    except ProfileError as exc:
        return Rejection("invalid_request", str(exc), param=exc.param)


def _found(profile: AgentProfile | None, status: int = 200) -> Response:
    if profile is None:
        return error_response(_NOT_FOUND)
    return JSONResponse(profiles.as_json(profile), status)


async def agents(request: Request) -> Response:
    """``GET /v1/agents``: the owner's agents; ``POST``: a new one."""
    services: Services = request.app.state.services
    creating = request.method == "POST"
    key = await _key(request, SCOPE_AGENTS_WRITE if creating else SCOPE_AGENTS_READ)
    if isinstance(key, Rejection):
        return error_response(key)
    if not creating:
        listed = await asyncio.to_thread(services.agents.list, key.owner)
        return JSONResponse({"object": "list", "data": [profiles.as_json(a) for a in listed]})
    changes = await _changes(request, creating=True)
    if isinstance(changes, Rejection):
        return error_response(changes)
    try:
        created = await asyncio.to_thread(services.agents.create, key.owner, changes)
    except TooManyAgents:
        message = f"this owner has {MAX_AGENTS_PER_OWNER} agents, the most it may; delete one"
        return error_response(Rejection("invalid_request", message))
    return _found(created, 201)


async def agent(request: Request) -> Response:
    """``GET``, ``POST`` or ``PATCH`` (a merge), ``DELETE`` ``/v1/agents/{agent_id}``."""
    services: Services = request.app.state.services
    store = services.agents
    agent_id: str = request.path_params["agent_id"]
    reading = request.method == "GET"
    key = await _key(request, SCOPE_AGENTS_READ if reading else SCOPE_AGENTS_WRITE)
    if isinstance(key, Rejection):
        return error_response(key)
    if reading:
        return _found(await asyncio.to_thread(store.get, key.owner, agent_id))
    if request.method == "DELETE":
        if not await asyncio.to_thread(store.delete, key.owner, agent_id):
            return error_response(_NOT_FOUND)
        return JSONResponse(
            {"object": "agent.deleted", "id": agent_id, "agent_id": agent_id, "deleted": True}
        )
    changes = await _changes(request, creating=False)
    if isinstance(changes, Rejection):
        return error_response(changes)
    return _found(await asyncio.to_thread(store.update, key.owner, agent_id, changes))


def agent_routes() -> list[BaseRoute]:
    return [
        Route(PATH, agents, methods=["GET", "POST"]),
        Route(f"{PATH}/{{agent_id}}", agent, methods=["GET", "POST", "PATCH", "DELETE"]),
    ]
