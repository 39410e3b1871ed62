"""``/v1/agents`` on a real server: profiles created, read, merged and deleted by the keys of
their owner only, bad input refused in the error envelope, bodies bounded per route."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import assert_envelope
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e

KNOWLEDGE = {
    "name": "Acme Dental",
    "entries": [{"question": "Is there parking?", "answer": "Yes, free parking behind us."}],
}


def _owner() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}"


def _client(server: RunningServer, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.http, headers={"Authorization": f"Bearer {key}"})


async def test_crud_for_the_keys_owner(echo_server: RunningServer) -> None:
    owner = _owner()
    key = echo_server.create_key(scopes=("agents:write",), owner=owner)
    async with _client(echo_server, key) as api:
        created = await api.post(
            "/v1/agents",
            json={
                "name": "Front desk",
                "persona": "You are Maya at Acme Dental.",
                "greeting": "Thanks for calling Acme Dental.",
                "kb_endpoint": "https://kb.example/query",
                "kb_token": "kb-secret",
                "vocabulary": ["Nguyen", "Invisalign"],
                "knowledge": KNOWLEDGE,
            },
        )
        assert created.status_code == 201, created.text
        agent = created.json()
        agent_id = agent["agent_id"]
        assert agent_id.startswith("agent_") and agent["id"] == agent_id
        assert agent["object"] == "agent" and agent["knowledge"] == KNOWLEDGE
        assert agent["kb_token_set"] is True and "kb-secret" not in created.text

        listed = (await api.get("/v1/agents")).json()
        assert listed["object"] == "list"
        assert [a["agent_id"] for a in listed["data"]] == [agent_id]
        assert (await api.get(f"/v1/agents/{agent_id}")).json() == agent

        for method in ("POST", "PATCH"):  # the SDK's update, and plain REST's
            response = await api.request(
                method, f"/v1/agents/{agent_id}", json={"greeting": f"{method} hello."}
            )
            assert response.status_code == 200, response.text
            assert response.json()["greeting"] == f"{method} hello."
        merged = (await api.post(f"/v1/agents/{agent_id}", json={"vocabulary": []})).json()
        assert merged["persona"] == "You are Maya at Acme Dental."  # untouched fields stay
        assert merged["vocabulary"] == [] and merged["knowledge"] == KNOWLEDGE
        # A fetched object sent back as it is changes nothing, its token included.
        again = (await api.post(f"/v1/agents/{agent_id}", json=merged)).json()
        assert {**again, "updated_at": 0} == {**merged, "updated_at": 0}

        deleted = await api.delete(f"/v1/agents/{agent_id}")
        assert deleted.json() == {
            "object": "agent.deleted",
            "id": agent_id,
            "agent_id": agent_id,
            "deleted": True,
        }
        missing = await api.get(f"/v1/agents/{agent_id}")
        assert_envelope(missing, 404, "not_found", "invalid_request_error", "agent_id")
        assert (await api.get("/v1/agents")).json()["data"] == []


async def test_another_owners_agent_is_not_found(echo_server: RunningServer) -> None:
    mine = echo_server.create_key(scopes=("agents:write",), owner=_owner())
    theirs = echo_server.create_key(scopes=("agents:write",), owner=_owner())
    async with _client(echo_server, mine) as api:
        agent_id = (await api.post("/v1/agents", json={"name": "Mine"})).json()["agent_id"]
    async with _client(echo_server, theirs) as api:
        assert (await api.get("/v1/agents")).json()["data"] == []
        for method in ("GET", "POST", "DELETE"):
            response = await api.request(method, f"/v1/agents/{agent_id}", json={})
            assert_envelope(response, 404, "not_found", "invalid_request_error", "agent_id")
    async with _client(echo_server, mine) as api:
        assert (await api.get(f"/v1/agents/{agent_id}")).json()["name"] == "Mine"


@pytest.mark.parametrize(
    ("scopes", "method", "path"),
    [
        (("omni:session",), "GET", "/v1/agents"),
        (("calls:read",), "GET", "/v1/agents/agent_x"),
        (("agents:read",), "POST", "/v1/agents"),
        (("agents:read",), "POST", "/v1/agents/agent_x"),
        (("agents:read",), "DELETE", "/v1/agents/agent_x"),
    ],
)
async def test_scopes_are_enforced(
    echo_server: RunningServer, scopes: tuple[str, ...], method: str, path: str
) -> None:
    key = echo_server.create_key(scopes=scopes, owner=_owner())
    async with _client(echo_server, key) as api:
        response = await api.request(method, path, json={"name": "x"})
    assert_envelope(response, 403, "forbidden", "permission_error")
    assert "agents:" in response.json()["error"]["message"]


async def test_read_scope_reads_and_omni_all_writes(echo_server: RunningServer) -> None:
    owner = _owner()
    writer = echo_server.create_key(scopes=("omni:*",), owner=owner)
    reader = echo_server.create_key(scopes=("agents:read",), owner=owner)
    async with _client(echo_server, writer) as api:
        created = await api.post("/v1/agents", json={"name": "Desk"})
        assert created.status_code == 201, created.text
    async with _client(echo_server, reader) as api:
        listed = (await api.get("/v1/agents")).json()["data"]
    assert [agent["name"] for agent in listed] == ["Desk"]


async def test_no_key_or_a_wrong_one_is_unauthorized(echo_server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=echo_server.http) as api:
        assert_envelope(await api.get("/v1/agents"), 401, "unauthorized", "authentication_error")
        wrong = await api.get("/v1/agents", headers={"Authorization": "Bearer vx_live_nope"})
        assert_envelope(wrong, 401, "unauthorized", "authentication_error")


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"greeting": "Hi."}, "name", "name is required"),
        ({"name": "x", "endpointing_ms": 50}, "endpointing_ms", "from 100 to 5000"),
        ({"name": "x", "kb_endpoint": "ftp://kb"}, "kb_endpoint", "http(s) URL"),
        ({"name": "x", "knowledge": {"entries": [{"question": "q"}]}}, "knowledge", "answer"),
        ({"name": "x", "knowledge_file": "/etc/passwd"}, "knowledge_file", "on the server"),
        ({"name": "x", "vocabulary": [1]}, "vocabulary", "strings"),
        ({"name": "x", "colour": "red"}, "colour", "unknown field"),
    ],
)
async def test_bad_input_is_refused(
    echo_server: RunningServer, body: dict[str, Any], param: str, message: str
) -> None:
    key = echo_server.create_key(scopes=("agents:write",), owner=_owner())
    async with _client(echo_server, key) as api:
        response = await api.post("/v1/agents", json=body)
        assert_envelope(response, 400, "invalid_request", "invalid_request_error", param)
        assert message in response.json()["error"]["message"]
        assert (await api.get("/v1/agents")).json()["data"] == []
        not_json = await api.post(
            "/v1/agents", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert_envelope(not_json, 400, "invalid_request", "invalid_request_error")


async def test_a_profile_may_carry_large_knowledge(echo_server: RunningServer) -> None:
    """Inline knowledge may take more than the 64 KiB of other routes (up to 1 MiB; the
    refusals past it are in test_http_edge)."""
    key = echo_server.create_key(scopes=("agents:write",), owner=_owner())
    entries = [
        {"question": f"Question number {i}?", "answer": f"Answer number {i}, " + "x" * 400}
        for i in range(400)
    ]
    async with _client(echo_server, key) as api:
        big = await api.post("/v1/agents", json={"name": "Big", "knowledge": {"entries": entries}})
        assert big.status_code == 201, big.text
        assert len(big.request.content) > 128 * 1024
