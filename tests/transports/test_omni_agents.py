"""Sessions that name a stored agent, over the Omni socket of a real server: they start from
its profile, ``configure`` overrides it key by key, and an agent the key may not use (unknown,
or another owner's) is ``invalid_agent_id`` with close 4400."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import ORIGIN, mint_token
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
