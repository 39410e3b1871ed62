"""Phone calls that name their agent, and an agent that presses keys on the line, end to end:
simulated Twilio and FreeSWITCH, speaking their real wire formats, call a real ``voxline
serve`` whose default agent thinks with an OpenAI-compatible model (the fake one).

A call naming a stored agent of the phone key's owner is that agent's: its greeting is what
the caller hears, its persona what the model is told, and its call record names it. A call
naming an agent the owner does not have is rejected unanswered by Twilio's webhook
(``<Reject/>``), and a FreeSWITCH stream refused with close 4400 ``invalid_agent_id``; a
Twilio stream naming another agent than its webhook did is refused as unauthorized. An
agent's ``send_dtmf`` is carried out once the caller has heard the line it came with: as
tones in the call's audio on Twilio, as ``uuid_send_dtmf`` over the Event Socket on
FreeSWITCH."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support import twilio_sim
from tests.support.api import scrape, value
from tests.support.fake_llm import FakeLLM, Reply, ToolCall
from tests.support.freeswitch_sim import AudioStreamChannel, FakeEventSocket, ThreadedEventSocket
from tests.support.keys import create_key
from tests.support.phone import Heard, Pcm, dtmf_keys
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.twilio_sim import FakeTwilioApi, TwilioStream
from voxline.bench.speech import synthesize

pytestmark = pytest.mark.e2e

PUBLIC_HOST = "voxline.example.test"
VOICE_URL = f"https://{PUBLIC_HOST}/twilio/voice"
STREAM_TOKEN = "fs-stream-secret"
OWNER = "acme"  # the phone key's owner, whose agents calls may name
BAKERY = {
    "name": "Bakery",
    "persona": "You are Bea, who answers the phone at the Corner Bakery.",
    "greeting": "Thanks for calling the bakery.",
}
GARDEN = {
    "name": "Garden",
    "persona": "You are Gus, who answers the phone at the Garden Center.",
    "greeting": "You have reached the garden center.",
}
QUESTION = "What time do you open tomorrow?"
PRESSING = "I'll press one for you."
UNKNOWN_AGENT = "agent_" + "0" * 24


@dataclass
class Phones:
    server: RunningServer
    twilio: FakeTwilioApi
    esl: FakeEventSocket
    esl_thread: ThreadedEventSocket
    llm: FakeLLM
    key_id: str  # the phone key's
    bakery: str  # agents of the phone key's owner
    garden: str
    strangers: str  # an agent of another owner
    reader: str  # a key that reads every call record
    listener: str  # a key that transcribes


def _create_agent(server: RunningServer, owner: str, profile: dict[str, str]) -> str:
    """An agent made over the REST API by a key of ``owner`` (not the phone key)."""
    key = server.create_key(scopes=("agents:write",), owner=owner)
    response = httpx.post(
        f"{server.http}/v1/agents",
        json=profile,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    agent_id: str = response.json()["agent_id"]
    return agent_id


def _delete_agent(server: RunningServer, owner: str, agent_id: str) -> None:
    key = server.create_key(scopes=("agents:write",), owner=owner)
    response = httpx.delete(
        f"{server.http}/v1/agents/{agent_id}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def phone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phones]:
    data_dir = tmp_path_factory.mktemp("phone-agents")
    key, _ = create_key(data_dir, env="live", label="phones", owner=OWNER)
    esl_thread = ThreadedEventSocket()
    with FakeLLM() as llm, FakeTwilioApi() as api, esl_thread.running() as esl:
        env = {
            **OPEN_LIMITS,
            "VOXLINE_PHONE_KEY_ID": key.id,
            "VOXLINE_TWILIO_ACCOUNT_SID": twilio_sim.ACCOUNT_SID,
            "VOXLINE_TWILIO_AUTH_TOKEN": twilio_sim.AUTH_TOKEN,
            "VOXLINE_TWILIO_PUBLIC_HOST": PUBLIC_HOST,
            "VOXLINE_TWILIO_API_BASE_URL": api.url,
            "VOXLINE_FREESWITCH_STREAM_TOKEN": STREAM_TOKEN,
            "VOXLINE_FREESWITCH_ESL_PORT": str(esl.port),
        }
        args = ("--llm-url", llm.url, "--llm-model", "test-model")
        with run_server(data_dir, env=env, agent="default", args=args) as server:
            yield Phones(
                server,
                api,
                esl,
                esl_thread,
                llm,
                key.id,
                bakery=_create_agent(server, OWNER, BAKERY),
                garden=_create_agent(server, OWNER, GARDEN),
                strangers=_create_agent(server, "globex", BAKERY),
                reader=server.create_key(scopes=("calls:read_all",)),
                listener=server.create_key(scopes=("hear:transcribe",)),
            )


@pytest.fixture
def phones(phone_server: Phones) -> Phones:
    phone_server.llm.reset()
    return phone_server


# ---- helpers -----------------------------------------------------------------------------


async def _webhook(phones: Phones, call_sid: str, agent_id: str | None = None) -> str:
    """The TwiML of Twilio's webhook of a call to the number whose webhook URL names
    ``agent_id`` (if given)."""
    url = VOICE_URL if agent_id is None else f"{VOICE_URL}?agent_id={agent_id}"
    params = twilio_sim.call_params(call_sid)
    response = await asyncio.to_thread(
        twilio_sim.post_webhook, phones.server.http, url, params, twilio_sim.sign(url, params)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    return response.text


async def _stream_twiml(
    phones: Phones, call_sid: str, agent_id: str | None = None
) -> twilio_sim.StreamTwiml:
    twiml = twilio_sim.parse_stream_twiml(await _webhook(phones, call_sid, agent_id))
    assert twiml.parameters.get("agent_id") == agent_id
    return twiml


async def _answer(phones: Phones, call_sid: str, agent_id: str | None = None) -> TwilioStream:
    """A Twilio call to the number whose webhook URL names ``agent_id`` (if given)."""
    twiml = await _stream_twiml(phones, call_sid, agent_id)
    return await TwilioStream.open(phones.server.http, twiml, phones.twilio, call_sid)


def _stream_url(server: RunningServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/freeswitch/audio?token={STREAM_TOKEN}{query}"


def _played(call: AudioStreamChannel, after: float) -> float:
    """When FreeSWITCH has played the agent audio the channel got ``after`` then, less one
    20 ms frame: nothing reports it, so the server goes by its own clock of what it paced."""
    return call.heard.played_until(call.rate, after) - 0.02


async def _transcribe(phones: Phones, pcm: Pcm, rate: int) -> str:
    """What the server's own recogniser hears in ``pcm``, lower case."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes(pcm.astype("<i2").tobytes())
    async with httpx.AsyncClient(base_url=phones.server.http, timeout=30) as client:
        response = await client.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": f"Bearer {phones.listener}"},
            files={"file": ("heard.wav", buffer.getvalue(), "audio/wav")},
        )
    assert response.status_code == 200, response.text
    text: str = response.json()["text"]
    return text.lower()


async def _records(phones: Phones, transport: str, since: float) -> list[dict[str, Any]]:
    """The records of ``transport``'s calls that started after ``since`` (epoch seconds)."""
    headers = {"Authorization": f"Bearer {phones.reader}"}
    async with httpx.AsyncClient(base_url=phones.server.http, timeout=10) as client:
        response = await client.get("/v1/calls", headers=headers)
    return [
        record
        for record in response.json()["data"]
        if record["transport"] == transport and record["started_at"] >= since
    ]


async def _finished_record(phones: Phones, transport: str, since: float) -> dict[str, Any]:
    """The one record of ``transport`` started after ``since``, once it is finished."""
    deadline = time.monotonic() + 5
    while True:
        records = await _records(phones, transport, since)
        if len(records) == 1 and records[0]["ended_at"] is not None:
            return records[0]
        assert len(records) <= 1 and time.monotonic() < deadline, records
        await asyncio.sleep(0.05)


async def _refusals(server: RunningServer, code: str = "invalid_agent_id") -> float:
    return value(await scrape(server), "voxline_rejections_total", code=code)


def _asked_of(phones: Phones) -> str:
    """The system prompt of the model's one request."""
    [request] = phones.llm.requests
    content: str = request.messages[0]["content"]
    assert request.messages[0]["role"] == "system"
    return content


async def _served_by(
    phones: Phones,
    call: TwilioStream | AudioStreamChannel,
    ours: dict[str, str],
    theirs: dict[str, str],
) -> None:
    """The call is greeted by agent ``ours``, not ``theirs``, and its question goes to the
    model with ``ours``'s persona."""
    await call.silence_until(call.quiet_for(0.6), timeout=10)  # the greeting plays
    greeting = await _transcribe(phones, call.heard.pcm(), call.rate)
    name, other = ours["name"].lower(), theirs["name"].lower()
    assert name in greeting and other not in greeting, greeting
    await call.stream(synthesize(QUESTION, call.rate))
    await call.silence_until(lambda: bool(phones.llm.requests))
    prompt = _asked_of(phones)
    assert ours["persona"] in prompt and theirs["persona"] not in prompt


# ---- calls that name their agent ---------------------------------------------------------


async def test_a_twilio_number_naming_an_agent_is_answered_by_it(phones: Phones) -> None:
    phones.llm.script(Reply(text="We open at eight."))
    since = time.time()
    call_sid = twilio_sim.new_call_sid()
    call = await _answer(phones, call_sid, phones.bakery)
    await _served_by(phones, call, BAKERY, GARDEN)

    await call.stop()
    record = await _finished_record(phones, "twilio", since)
    assert record["key_id"] == phones.key_id
    assert record["agent_id"] == phones.bakery
    assert record["close_reason"] == "caller_hung_up"


@pytest.mark.parametrize(
    ("named_in", "channel_in_url"),
    [
        pytest.param("url", True, id="the URL naming the channel too"),
        pytest.param("url", False, id="the URL, the channel in the metadata"),
        pytest.param("metadata", False, id="the metadata naming the channel too"),
        pytest.param("metadata", True, id="the metadata, the channel in the URL"),
    ],
)
async def test_a_freeswitch_stream_naming_an_agent_is_answered_by_it(
    phones: Phones, named_in: str, channel_in_url: bool
) -> None:
    phones.llm.script(Reply(text="We open at eight."))
    since = time.time()
    channel = str(uuid.uuid4())
    query = f"&agent_id={phones.garden}" if named_in == "url" else ""
    label = "garden-line"
    metadata = (
        {"agent_id": phones.garden, "session_label": label} if named_in == "metadata" else None
    )
    call = await AudioStreamChannel.open(
        _stream_url(phones.server, query), channel, metadata, channel_in_url=channel_in_url
    )
    await _served_by(phones, call, GARDEN, BAKERY)

    await phones.esl_thread.arun(lambda: phones.esl.hangup(channel))
    await call.silence_until(lambda: call.ended, timeout=5)
    record = await _finished_record(phones, "freeswitch", since)
    assert record["key_id"] == phones.key_id
    assert record["agent_id"] == phones.garden
    assert record["close_reason"] == "caller_hung_up"
    assert record["session_label"] == (label if metadata else None)


def _refused_agent(phones: Phones, whose: str) -> str:
    return phones.strangers if whose == "another owner's" else UNKNOWN_AGENT


@pytest.mark.parametrize("whose", ["unknown", "another owner's"])
async def test_a_twilio_call_naming_an_agent_the_phone_key_may_not_use_is_rejected_unanswered(
    phones: Phones, whose: str
) -> None:
    refusals = await _refusals(phones.server)
    since = time.time()
    call_sid = twilio_sim.new_call_sid()
    twiml = await _webhook(phones, call_sid, _refused_agent(phones, whose))
    # Not answered, so not billed, and no stream to be refused into silence.
    assert twiml == '<?xml version="1.0" encoding="UTF-8"?><Response><Reject /></Response>'
    assert f"twilio call {call_sid} refused" in phones.server.log()
    assert await _refusals(phones.server) == refusals + 1
    assert phones.twilio.updates(call_sid) == []
    assert await _records(phones, "twilio", since) == []  # no session, no record


async def test_a_twilio_stream_naming_another_agent_than_its_webhook_is_refused(
    phones: Phones,
) -> None:
    """The stream token covers the agent the webhook named: a stream that names another,
    or none (the phone calls' own), is not the call Twilio's signed webhook answered."""
    refusals = await _refusals(phones.server, "unauthorized")
    since = time.time()
    call_sid = twilio_sim.new_call_sid()
    twiml = await _stream_twiml(phones, call_sid, phones.bakery)
    others = {phones.garden, phones.strangers, ""}
    for other in others:
        parameters = {**twiml.parameters, "agent_id": other}
        changed = twilio_sim.StreamTwiml(twiml.url, parameters)
        call = await TwilioStream.open(phones.server.http, changed, phones.twilio, call_sid)
        await call.closed()
        assert (call.close_code, call.ws.close_reason) == (4401, "unauthorized"), other
        assert call.heard.samples() == 0
    assert await _refusals(phones.server, "unauthorized") == refusals + len(others)
    assert await _records(phones, "twilio", since) == []


async def test_a_twilio_call_whose_agent_is_deleted_before_its_stream_is_refused(
    phones: Phones,
) -> None:
    """The webhook found the agent; the stream, admitted after, no longer does."""
    agent_id = _create_agent(phones.server, OWNER, GARDEN)
    refusals = await _refusals(phones.server)
    since = time.time()
    call_sid = twilio_sim.new_call_sid()
    twiml = await _stream_twiml(phones, call_sid, agent_id)
    _delete_agent(phones.server, OWNER, agent_id)
    call = await TwilioStream.open(phones.server.http, twiml, phones.twilio, call_sid)
    await call.closed()
    assert (call.close_code, call.ws.close_reason) == (4400, "invalid_agent_id")
    assert call.heard.samples() == 0  # no one, not another agent, answered
    assert phones.twilio.updates(call_sid) == []  # the stream's end ends the call
    assert f"twilio call {call_sid} refused" in phones.server.log()
    assert await _refusals(phones.server) == refusals + 1
    assert await _records(phones, "twilio", since) == []


@pytest.mark.parametrize("whose", ["unknown", "another owner's"])
async def test_a_freeswitch_stream_naming_an_agent_the_phone_key_may_not_use_is_refused(
    phones: Phones, whose: str
) -> None:
    refusals = await _refusals(phones.server)
    since = time.time()
    channel = str(uuid.uuid4())
    metadata = {"agent_id": _refused_agent(phones, whose)}
    call = await AudioStreamChannel.open(_stream_url(phones.server), channel, metadata)
    await call.closed()
    assert (call.close_code, call.ws.close_reason) == (4400, "invalid_agent_id")
    # The parked channel is hung up rather than left in silence.
    kill = f"uuid_kill {channel} CALL_REJECTED"
    await call.silence_until(lambda: kill in phones.esl.api_commands, timeout=5)
    assert call.heard.samples() == 0
    assert f"freeswitch call {channel} refused" in phones.server.log()
    assert await _refusals(phones.server) == refusals + 1
    assert await _records(phones, "freeswitch", since) == []


# ---- send_dtmf -----------------------------------------------------------------------------


def _presses_keys(phones: Phones) -> None:
    phones.llm.script(Reply(text=PRESSING, tool_calls=[ToolCall("send_dtmf", {"digits": "1#"})]))


async def test_an_agent_presses_keys_on_a_twilio_call_once_its_line_is_heard(
    phones: Phones,
) -> None:
    _presses_keys(phones)
    since = time.time()
    call_sid = twilio_sim.new_call_sid()
    call = await _answer(phones, call_sid)
    await call.stream(synthesize(QUESTION, call.rate))
    asked = time.monotonic()
    await call.silence_until(
        lambda: (
            len(dtmf_keys(call.heard.pcm(after=asked), call.rate)) >= 2
            and call.quiet_for(0.3, since=asked)()
        )
    )
    heard = [(t, pcm) for t, pcm in call.heard.audio if t >= asked]
    keys = dtmf_keys(np.concatenate([pcm for _, pcm in heard]), call.rate)
    assert [key for key, _ in keys] == ["1", "#"]

    # What was heard before the piece holding the first key is the line, and no key.
    ends = np.cumsum([len(pcm) for _, pcm in heard])
    inside_first_key = keys[0][1] + call.rate // 40  # a block on: within its 100 ms tone
    tones_at = int(np.searchsorted(ends, inside_first_key, side="right"))
    line = Heard(heard[:tones_at])
    assert line.samples() > 0.5 * call.rate
    assert dtmf_keys(line.pcm(), call.rate) == []
    assert "press" in await _transcribe(phones, line.pcm(), call.rate)

    # The tones were sent only once the line had played (its last mark echoed).
    tones = heard[tones_at][1]
    sent = next(t for t, pcm in call.arrived.audio if pcm is tones)
    assert sent >= line.played_until(call.rate)

    [request] = phones.llm.requests
    assert "send_dtmf" in request.function_names
    assert phones.twilio.updates(call_sid) == []  # keys pressed, the call goes on
    await call.stop()
    record = await _finished_record(phones, "twilio", since)
    assert (record["close_reason"], record["agent_id"]) == ("caller_hung_up", None)


async def test_an_agent_presses_keys_on_a_freeswitch_call_once_its_line_is_heard(
    phones: Phones,
) -> None:
    _presses_keys(phones)
    since = time.time()
    esl = phones.esl
    channel = str(uuid.uuid4())
    call = await AudioStreamChannel.open(_stream_url(phones.server), channel, {})
    await call.stream(synthesize(QUESTION, call.rate))
    asked = time.monotonic()
    command = f"uuid_send_dtmf {channel} 1#"
    await call.silence_until(lambda: command in esl.api_commands)
    sent = esl.api_times[esl.api_commands.index(command)]
    line = call.heard.pcm(after=asked)
    assert len(line) > 0.5 * call.rate
    assert sent >= _played(call, after=asked)  # once the line had played
    assert "press" in await _transcribe(phones, line, call.rate)
    # Out of band only: no tones in the call's audio, then or since.
    assert dtmf_keys(call.heard.pcm(after=asked), call.rate) == []

    assert not any(c.startswith(f"uuid_kill {channel}") for c in esl.api_commands)
    await phones.esl_thread.arun(lambda: esl.hangup(channel))
    await call.silence_until(lambda: call.ended, timeout=5)
    record = await _finished_record(phones, "freeswitch", since)
    assert (record["close_reason"], record["agent_id"]) == ("caller_hung_up", None)
    assert esl.api_commands.count(command) == 1
