"""The public SDK, unmodified, manages agents on a real server: ``PyAI.agents`` create, list,
get, update and delete, and its typed errors on bad input."""

from __future__ import annotations

import uuid

import pytest
from pyai import PyAI, PyAIError

from tests.support.server import RunningServer

pytestmark = pytest.mark.e2e

KNOWLEDGE = {
    "name": "Acme Dental",
    "entries": [{"question": "Is there parking?", "answer": "Yes, free parking behind us."}],
}


def _sdk(server: RunningServer, *scopes: str) -> PyAI:
    key = server.create_key(scopes=scopes, owner=f"sdk-{uuid.uuid4().hex[:8]}")
    return PyAI(key, base_url=server.http, max_retries=0)


def test_the_sdk_manages_agents(echo_server: RunningServer) -> None:
    with _sdk(echo_server, "agents:write") as pyai:
        agent = pyai.agents.create(
            name="Front desk",
            persona="You are Maya, the receptionist at Acme Dental.",
            greeting="Thanks for calling Acme Dental.",
            knowledge=KNOWLEDGE,
            vocabulary=["Nguyen", "Acme Dental", "SKU-99"],
        )
        agent_id = agent["agent_id"]
        assert agent["name"] == "Front desk"
        assert agent["vocabulary"] == ["Nguyen", "Acme Dental", "SKU-99"]
        assert agent["knowledge"] == KNOWLEDGE

        assert [a["agent_id"] for a in pyai.agents.list()["data"]] == [agent_id]
        assert pyai.agents.get(agent_id) == agent

        updated = pyai.agents.update(agent_id, vocabulary=[], greeting="Hello!")
        assert updated["vocabulary"] == [] and updated["greeting"] == "Hello!"
        assert updated["persona"] == agent["persona"]
        assert pyai.agents.get(agent_id)["greeting"] == "Hello!"

        assert pyai.agents.delete(agent_id)["deleted"] is True
        with pytest.raises(PyAIError) as missing:
            pyai.agents.get(agent_id)
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        assert pyai.agents.list()["data"] == []


def test_the_sdk_raises_on_bad_input_and_missing_scopes(echo_server: RunningServer) -> None:
    with _sdk(echo_server, "agents:write") as pyai:
        with pytest.raises(PyAIError) as bad:
            pyai.agents.create(name="Desk", endpointing_ms=20)
        assert (bad.value.status, bad.value.code) == (400, "invalid_request")
        assert bad.value.type == "invalid_request_error"
        assert "endpointing_ms must be an integer from 100 to 5000" in bad.value.message
        with pytest.raises(PyAIError) as bad_vocabulary:
            pyai.agents.create(name="Desk", vocabulary="Nguyen")
        assert (bad_vocabulary.value.status, bad_vocabulary.value.code) == (400, "invalid_request")
        with pytest.raises(PyAIError) as nameless:
            pyai.agents.create(name="")
        assert nameless.value.code == "invalid_request"
        with pytest.raises(PyAIError) as unknown:
            pyai.agents.update("agent_000000000000000000000000", greeting="Hi.")
        assert (unknown.value.status, unknown.value.code) == (404, "not_found")
    with _sdk(echo_server, "agents:read") as reader:
        assert reader.agents.list()["data"] == []
        with pytest.raises(PyAIError) as forbidden:
            reader.agents.create(name="Desk")
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
