"""The default agent from a stored agent profile, end to end: a server with no knowledge of
its own greets with the profile's greeting and answers a spoken question from the profile's
inline knowledge; ``configure`` overrides the profile's greeting."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.caller import Caller, Received
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.bench.speech import synthesize

pytestmark = pytest.mark.e2e

RATE = 24000
GREETING = "Thanks for calling Bright Smiles."
ANSWER = "Yes, Doctor Nguyen fits Invisalign aligners every Tuesday."
PROFILE = {
    "name": "Bright Smiles front desk",
    "persona": "You are Maya at Bright Smiles.",
    "greeting": GREETING,
    "vocabulary": ["Nguyen", "Invisalign"],
    "knowledge": {
        "name": "Bright Smiles",
        "entries": [
            {
                "question": "Do you offer Invisalign?",
                "alternates": ["Can I get clear aligners?"],
                "answer": ANSWER,
            },
            {"question": "Is there parking?", "answer": "Yes, behind the building."},
        ],
    },
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(
        tmp_path_factory.mktemp("profiles"), env=OPEN_LIMITS, agent="default"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def agent_id(server: RunningServer) -> str:
    key = server.create_key(scopes=("agents:write",))
    response = httpx.post(
        f"{server.http}/v1/agents", json=PROFILE, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 201, response.text
    created: str = response.json()["agent_id"]
    return created


def _said(got: Received) -> list[str]:
    return [
        event["text"]
        for _, event in got.events
        if event["event"] == "transcript" and event["role"] == "assistant" and event["final"]
    ]


async def _open(server: RunningServer, agent_id: str, **configure: object) -> Caller:
    caller = await Caller.open(
        f"{server.ws}?agent_id={agent_id}",
        subprotocols=["pyai.v1", f"pyai-key.{server.create_key()}"],
    )
    await caller.send_control({"type": "configure", **configure})
    return caller


async def test_the_agents_greeting_and_an_answer_from_its_knowledge(
    server: RunningServer, agent_id: str
) -> None:
    caller = await _open(server, agent_id)
    configured = await caller.wait_for("configured")
    assert configured["greeting"] is True and configured["kb"] is True
    await caller.silence_until(lambda got: len(_said(got)) >= 1)
    assert _said(caller.got) == [GREETING]
    assert caller.got.audio_bytes() > 0.5 * RATE * 2

    await caller.stream(synthesize("Do you offer Invisalign?", RATE))
    await caller.silence_until(lambda got: len(_said(got)) >= 2, timeout=20)
    await caller.close()
    heard = [e["text"] for _, e in caller.got.events if e.get("role") == "user"]
    assert _said(caller.got)[-1] == ANSWER, heard


async def test_configure_overrides_the_agents_greeting(
    server: RunningServer, agent_id: str
) -> None:
    caller = await _open(server, agent_id, greeting="Hello from the override.")
    await caller.silence_until(lambda got: len(_said(got)) >= 1)
    await caller.send_control({"type": "input_text", "text": "Is there parking?"})
    await caller.silence_until(lambda got: len(_said(got)) >= 2, timeout=20)
    await caller.close()
    assert _said(caller.got) == ["Hello from the override.", "Yes, behind the building."]
