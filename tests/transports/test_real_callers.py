"""Clients and callers as they really are, against a real server with the default agent: a
client that stops streaming after its question, a caller who talks over turn 0, a bridge
that acts on call control the moment it arrives, and a client that closes without a code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.caller import Caller, Received
from tests.support.examples import ACME_DENTAL
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.bench.speech import synthesize

pytestmark = pytest.mark.e2e

RATE = 24000
GREETING = "Thanks for calling Acme Dental."
CONSENT = "This call may be recorded for quality and training purposes."
QUESTION = "What time do you open tomorrow?"
SERVER_DESTINATION = "+15550100999"


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {**OPEN_LIMITS, "VOXLINE_TRANSFER_DESTINATION": SERVER_DESTINATION}
    with run_server(
        tmp_path_factory.mktemp("callers"),
        env=env,
        agent="default",
        args=("--knowledge", str(ACME_DENTAL)),
    ) as server:
        yield server


async def _open(server: RunningServer, **configure: object) -> Caller:
    key = server.create_key()
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure", **configure})
    await caller.wait_for("configured")
    return caller


def _finals(got: Received, role: str) -> list[str]:
    return [
        event["text"]
        for _, event in got.events
        if event["event"] == "transcript" and event["role"] == role and event["final"]
    ]


def _seconds(got: Received, after: float = 0.0, before: float = float("inf")) -> float:
    return got.audio_bytes(after, before) / 2 / RATE


async def test_a_client_that_stops_streaming_after_its_question_is_answered(
    agent_server: RunningServer,
) -> None:
    caller = await _open(agent_server)
    await caller.stream(synthesize(QUESTION, RATE))
    await caller.silence(0.1)  # one short silence, then nothing, as the evaluation harness
    last_frame = time.monotonic()
    # The answer, not the rest of the greeting the question was asked over.
    async with asyncio.timeout(5):
        while not (_answered(caller.got) and caller.got.audio_bytes(after=_begun(caller.got))):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    answered = next(t for t, _ in caller.got.audio if t >= _begun(caller.got))
    assert answered - last_frame <= 1.5
    assert "open" in _finals(caller.got, "user")[0].lower()

    # Audio that resumes continues the call: the next question is a turn of its own.
    await caller.silence_until(lambda got: not got.audio_bytes(after=time.monotonic() - 0.3))
    await caller.stream(synthesize("Goodbye.", RATE))
    await caller.silence_until(lambda got: "end_call" in got.names())
    assert len(_finals(caller.got, "user")) == 2
    await caller.closed()


async def test_a_caller_talking_soon_after_configure_hears_the_greeting(
    agent_server: RunningServer,
) -> None:
    caller = await _open(agent_server, greeting=GREETING)
    configured = time.monotonic()
    await caller.silence(0.4)
    await caller.stream(synthesize(QUESTION, RATE))
    await caller.silence_until(lambda got: len(_finals(got, "user")) >= 1 and _answered(got))
    got = caller.got
    flushed = got.when("flush") if "flush" in got.names() else float("inf")
    assert _seconds(got, after=configured, before=flushed) >= 0.9  # the greeting, heard
    assert "open" in _finals(got, "user")[0].lower()
    await caller.close()


def _answered(got: Received) -> bool:
    """A reply to the caller's first turn has begun."""
    return any(event["event"] == "turn_begin" for _, event in got.events)


def _begun(got: Received) -> float:
    """When the reply to the caller's first turn began."""
    return got.when("turn_begin")


async def test_the_consent_line_plays_in_full_while_the_caller_talks(
    agent_server: RunningServer,
) -> None:
    caller = await _open(agent_server, consent_line=CONSENT, greeting=GREETING)
    await caller.silence(0.2)
    await caller.stream(synthesize(QUESTION, RATE))  # over the consent line
    await caller.silence_until(_answered)
    got = caller.got
    interrupted = [
        event["reply"] for _, event in got.events if event["event"] == "assistant_interrupted"
    ]
    heard = interrupted[0] if interrupted else _finals(got, "assistant")[0]
    assert heard.startswith(CONSENT)  # heard in full, though the caller talked
    assert "open" in _finals(got, "user")[0].lower()  # and the caller was heard, and answered
    await caller.close()


@pytest.mark.parametrize(
    ("said", "configure", "event", "destination"),
    [
        ("Goodbye.", {}, "end_call", None),
        ("Can you transfer me to a person?", {}, "transfer_to_human", SERVER_DESTINATION),
        (
            "Can you transfer me to a person?",
            {"transfer_destination": "sip:desk@example.test"},
            "transfer_to_human",
            "sip:desk@example.test",
        ),
    ],
)
async def test_call_control_comes_after_the_lines_audio(
    agent_server: RunningServer,
    said: str,
    configure: dict[str, str],
    event: str,
    destination: str | None,
) -> None:
    caller = await _open(agent_server, **configure)
    await caller.silence_until(lambda got: bool(_finals(got, "assistant")))  # the greeting
    await caller.stream(synthesize(said, RATE))
    asked = time.monotonic()
    await caller.silence_until(lambda got: event in got.names())
    got = caller.got
    line = [(t, pcm) for t, pcm in got.audio if t >= asked]
    assert line, "the line was spoken"
    at = got.when(event)
    assert all(t <= at for t, _ in line)  # every bit of the line's audio came before it
    # ...and the event only once it has had time to play (the audio comes paced, 60 ms ahead).
    assert at - line[0][0] >= _seconds(got, after=asked) - 0.1
    if destination is not None:
        assert got.first(event)["destination"] == destination
    await caller.close()


async def test_a_close_without_a_status_code_is_a_normal_close(
    echo_server: RunningServer,
) -> None:
    caller = await _open(echo_server)
    call_id = caller.got.first("hello")["call_id"]
    await caller.silence(0.1)
    await caller.ws.close(code=None)  # type: ignore[arg-type]  # what Node's ws.close() sends
    await caller.closed()
    key = echo_server.create_key(scopes=("calls:read_all",))
    record: dict[str, object] = {}
    for _ in range(100):  # the record is finished as the server's handler ends
        response = httpx.get(  # noqa: ASYNC210
            f"{echo_server.http}/v1/calls/{call_id}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        record = response.json()
        if record.get("ended_at") is not None:
            break
        await asyncio.sleep(0.01)
    assert (record["close_code"], record["close_reason"]) == (1000, "client_closed")
