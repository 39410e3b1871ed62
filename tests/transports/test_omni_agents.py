"""Sessions that name a stored agent, over the Omni socket of a real server: they start from
its profile, ``configure`` overrides it key by key, an agent the key may not use (unknown,
or another owner's) is ``invalid_agent_id`` with close 4400, and the call record names the
agent that served the call."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import ORIGIN, get, mint_token
from tests.support.caller import Caller
from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e

PROFILE = {
    "name": "Front desk",
    "voice_id": "joe",
    "language": "fr",
    "endpointing_ms": 900,
    "greeting": "Bonjour.",
}


def _owner() -> str:
    return f"owner-{uuid.uuid4().hex[:8]}"


def _agent(server: RunningServer, owner: str, **fields: Any) -> str:
    key = server.create_key(scopes=("agents:write",), owner=owner)
    response = httpx.post(
        f"{server.http}/v1/agents",
        json={**PROFILE, **fields},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    agent_id: str = response.json()["agent_id"]
    return agent_id


async def _open(server: RunningServer, key: str, query: str = "") -> Caller:
    return await Caller.open(f"{server.ws}{query}", subprotocols=["pyai.v1", f"pyai-key.{key}"])


async def test_a_session_naming_an_agent_starts_from_its_profile(
    echo_server: RunningServer,
) -> None:
    owner = _owner()
    agent_id = _agent(echo_server, owner)
    caller = await _open(echo_server, echo_server.create_key(owner=owner), f"?agent_id={agent_id}")
    await caller.send_control({"type": "configure"})
    configured = await caller.wait_for("configured")
    assert (configured["voice_id"], configured["language"]) == ("joe", "fr")
    assert configured["endpointing_ms"] == 900
    started = caller.got.first("session_started")
    assert started["agent_id"] == started["session_label"] == agent_id
    await caller.close()


async def test_configure_overrides_the_profile_key_by_key(echo_server: RunningServer) -> None:
    owner = _owner()
    agent_id = _agent(echo_server, owner)
    key = echo_server.create_key(owner=owner)
    caller = await _open(echo_server, key, f"?agent_id={agent_id}&session_label=desk-7")
    await caller.send_control({"type": "configure", "voice_id": "amy"})
    configured = await caller.wait_for("configured")
    assert (configured["voice_id"], configured["language"]) == ("amy", "fr")
    assert configured["endpointing_ms"] == 900
    assert caller.got.first("session_started")["session_label"] == "desk-7"
    await caller.close()


async def test_configure_may_name_the_agent(echo_server: RunningServer) -> None:
    owner = _owner()
    agent_id = _agent(echo_server, owner)
    caller = await _open(echo_server, echo_server.create_key(owner=owner))
    await caller.send_control({"type": "configure", "agent_id": agent_id, "endpointing_ms": 300})
    configured = await caller.wait_for("configured")
    assert (configured["voice_id"], configured["endpointing_ms"]) == ("joe", 300)
    ack = await caller.wait_for("config_ack")
    assert "agent_id" in ack["honored"] and ack["ignored"] == []
    await caller.close()


async def test_a_browser_token_uses_its_keys_owners_agents(echo_server: RunningServer) -> None:
    owner = _owner()
    agent_id = _agent(echo_server, owner)
    token = (await mint_token(echo_server, echo_server.create_key(owner=owner)))["token"]
    caller = await Caller.open(
        f"{echo_server.ws}?agent_id={agent_id}",
        subprotocols=["pyai.v1", f"pyai-key.{token}"],
        origin=ORIGIN,
    )
    await caller.send_control({"type": "configure"})
    assert (await caller.wait_for("configured"))["voice_id"] == "joe"
    await caller.close()


@pytest.mark.parametrize("whose", ["unknown", "another owner's"])
async def test_an_agent_the_key_may_not_use_is_refused(
    echo_server: RunningServer, whose: str
) -> None:
    owner = _owner()
    agent_id = (
        _agent(echo_server, _owner()) if whose != "unknown" else "agent_000000000000000000000000"
    )
    key = echo_server.create_key(owner=owner)
    caller = await _open(echo_server, key, f"?agent_id={agent_id}")
    await caller.send_control({"type": "configure"})
    got = await caller.closed()
    assert (got.close_code, got.close_reason) == (4400, "invalid_agent_id")
    [error] = [event for _, event in got.events]
    assert (error["event"], error["code"]) == ("error", "invalid_agent_id")

    caller = await _open(echo_server, key)
    await caller.send_control({"type": "configure", "agent_id": agent_id})
    got = await caller.closed()
    assert (got.close_code, got.close_reason) == (4400, "invalid_agent_id")
    assert got.names()[-2:] == ["error", "session_end"]
    assert got.first("error")["code"] == "invalid_agent_id"


async def test_a_label_that_names_no_agent_stays_a_label(echo_server: RunningServer) -> None:
    caller = await _open(echo_server, echo_server.create_key(), "?agent_id=front-desk")
    await caller.send_control({"type": "configure", "agent_id": "front-desk"})
    ack = await caller.wait_for("config_ack")
    assert ack["ignored"] == ["agent_id"]
    assert caller.got.first("session_started")["agent_id"] == "front-desk"
    await caller.close()


# ---- the call record names the agent -------------------------------------------------------


async def _record(server: RunningServer, key: str, call_id: str, *, ended: bool) -> dict[str, Any]:
    """``GET /v1/calls/{call_id}`` once the server has written the record (``ended``: once it
    has completed it)."""
    deadline = time.monotonic() + 5
    while True:
        response = await get(server, f"/v1/calls/{call_id}", key)
        if response.status_code == 200 and (not ended or response.json()["ended_at"]):
            record: dict[str, Any] = response.json()
            return record
        assert response.status_code in (200, 404), response.text
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.05)


async def test_the_record_of_a_call_naming_an_agent_names_it_from_the_start(
    echo_server: RunningServer,
) -> None:
    owner = _owner()
    agent_id = _agent(echo_server, owner)
    key = echo_server.create_key(scopes=("omni:session", "calls:read"), owner=owner)
    caller = await _open(echo_server, key, f"?agent_id={agent_id}")
    await caller.send_control({"type": "configure"})
    call_id = (await caller.wait_for("hello"))["call_id"]
    live = await _record(echo_server, key, call_id, ended=False)
    assert live["agent_id"] == agent_id
    await caller.close()
    record = await _record(echo_server, key, call_id, ended=True)
    assert (record["agent_id"], record["session_label"]) == (agent_id, agent_id)
    listing = await get(echo_server, "/v1/calls?limit=1000", key)
    [listed] = [r for r in listing.json()["data"] if r["call_id"] == call_id]
    assert listed == record


async def test_the_record_names_the_agent_a_configure_named(echo_server: RunningServer) -> None:
    owner = _owner()
    first, then = _agent(echo_server, owner), _agent(echo_server, owner, greeting="Hallo.")
    key = echo_server.create_key(scopes=("omni:session", "calls:read"), owner=owner)

    caller = await _open(echo_server, key)
    await caller.send_control({"type": "configure", "agent_id": first})
    await caller.wait_for("configured")
    call_id = caller.got.first("hello")["call_id"]
    await caller.close()
    assert (await _record(echo_server, key, call_id, ended=True))["agent_id"] == first

    # The last one named, when a call changes agent.
    caller = await _open(echo_server, key, f"?agent_id={first}")
    await caller.send_control({"type": "configure", "agent_id": then})
    await caller.wait_for("configured")
    call_id = caller.got.first("hello")["call_id"]
    await caller.close()
    assert (await _record(echo_server, key, call_id, ended=True))["agent_id"] == then


async def test_the_record_of_a_call_naming_no_agent_names_none(
    echo_server: RunningServer,
) -> None:
    key = echo_server.create_key(scopes=("omni:session", "calls:read"))
    # A label that names no stored agent labels the call, and is no agent.
    for query in ("", "?agent_id=front-desk"):
        caller = await _open(echo_server, key, query)
        await caller.send_control({"type": "configure"})
        call_id = (await caller.wait_for("hello"))["call_id"]
        await caller.close()
        record = await _record(echo_server, key, call_id, ended=True)
        assert record["agent_id"] is None, query
        assert record["session_label"] == (query.partition("=")[2] or None)
