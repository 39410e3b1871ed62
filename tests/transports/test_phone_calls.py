"""Phone calls end to end: simulated Twilio and FreeSWITCH, speaking their real wire formats,
call a real ``voxline serve`` with the default agent; each call is greeted, asks, hears an
answer, interrupts it, keys DTMF, and is transferred or hung up, and leaves a call record."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support import twilio_sim
from tests.support.examples import ACME_DENTAL
from tests.support.freeswitch_sim import AudioStreamChannel, FakeEventSocket, ThreadedEventSocket
from tests.support.keys import create_key
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.twilio_sim import FakeTwilioApi, TwilioStream
from voxline.bench.speech import synthesize

pytestmark = pytest.mark.e2e

GREETING = "Thanks for calling Acme Dental."
PUBLIC_HOST = "voxline.example.test"
VOICE_URL = f"https://{PUBLIC_HOST}/twilio/voice"
TRANSFER_NUMBER = "+15550100200"
TRANSFER_TARGET = "1000 XML default"
STREAM_TOKEN = "fs-stream-secret"
QUESTION = "What time do you open tomorrow?"
INTERRUPTION = "Sorry, one more thing."


@dataclass
class Phones:
    server: RunningServer
    twilio: FakeTwilioApi
    esl: FakeEventSocket
    esl_thread: ThreadedEventSocket
    key_id: str


@pytest.fixture(scope="module")
def phones(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phones]:
    data_dir = tmp_path_factory.mktemp("phones")
    key, _ = create_key(data_dir, env="live", label="phones")
    esl_thread = ThreadedEventSocket()
    with FakeTwilioApi() as api, esl_thread.running() as esl:
        env = {
            **OPEN_LIMITS,
            "VOXLINE_PHONE_KEY_ID": key.id,
            "VOXLINE_PHONE_CONFIGURE": json.dumps({"greeting": GREETING}),
            "VOXLINE_TWILIO_ACCOUNT_SID": twilio_sim.ACCOUNT_SID,
            "VOXLINE_TWILIO_AUTH_TOKEN": twilio_sim.AUTH_TOKEN,
            "VOXLINE_TWILIO_PUBLIC_HOST": PUBLIC_HOST,
            "VOXLINE_TWILIO_TRANSFER_NUMBER": TRANSFER_NUMBER,
            "VOXLINE_TWILIO_API_BASE_URL": api.url,
            "VOXLINE_FREESWITCH_STREAM_TOKEN": STREAM_TOKEN,
            "VOXLINE_FREESWITCH_ESL_PORT": str(esl.port),
            "VOXLINE_FREESWITCH_TRANSFER_TARGET": TRANSFER_TARGET,
        }
        with run_server(
            data_dir, env=env, agent="default", args=("--knowledge", str(ACME_DENTAL))
        ) as server:
            yield Phones(server, api, esl, esl_thread, key.id)


def _calls(server: RunningServer) -> dict[str, dict[str, Any]]:
    key = server.create_key(scopes=("calls:read_all",))
    response = httpx.get(
        f"{server.http}/v1/calls", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    return {record["call_id"]: record for record in response.json()["data"]}


def _records(server: RunningServer, transport: str, count: int) -> list[dict[str, Any]]:
    """The ``count`` latest finished records of ``transport``, oldest first."""
    deadline = time.monotonic() + 10
    while True:
        records = [
            r for r in _calls(server).values() if r["transport"] == transport and r["ended_at"]
        ]
        if len(records) >= count or time.monotonic() > deadline:
            return sorted(records, key=lambda r: float(r["started_at"]))[-count:]
        time.sleep(0.2)


# ---- Twilio ------------------------------------------------------------------------------


def test_unsigned_or_wrongly_signed_webhooks_are_refused(phones: Phones) -> None:
    params = twilio_sim.call_params(twilio_sim.new_call_sid())
    http = phones.server.http
    assert twilio_sim.post_webhook(http, VOICE_URL, params, None).status_code == 403
    wrong = twilio_sim.sign(VOICE_URL, params, token="0" * 32)
    assert twilio_sim.post_webhook(http, VOICE_URL, params, wrong).status_code == 403
    tampered = twilio_sim.sign(VOICE_URL, {**params, "From": "+15559999999"})
    assert twilio_sim.post_webhook(http, VOICE_URL, params, tampered).status_code == 403
    other_url = twilio_sim.sign("https://elsewhere.example/twilio/voice", params)
    assert twilio_sim.post_webhook(http, VOICE_URL, params, other_url).status_code == 403


async def _answer(phones: Phones, call_sid: str) -> TwilioStream:
    params = twilio_sim.call_params(call_sid)
    response = twilio_sim.post_webhook(
        phones.server.http, VOICE_URL, params, twilio_sim.sign(VOICE_URL, params)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    twiml = twilio_sim.parse_stream_twiml(response.text)
    assert twiml.url == f"wss://{PUBLIC_HOST}/twilio/media"
    assert twiml.parameters["from"] == params["From"]
    return await TwilioStream.open(phones.server.http, twiml, phones.twilio, call_sid)


async def test_a_twilio_call_from_greeting_to_transfer(phones: Phones) -> None:
    call_sid = twilio_sim.new_call_sid()
    call = await _answer(phones, call_sid)
    await call.silence_until(call.quiet_for(0.6))  # the greeting plays
    greeting = call.heard.samples()
    assert 0.8 * call.rate < greeting < 3.5 * call.rate
    assert call.marks_sent  # and every 20 ms of it was marked

    # A question, the start of its answer, and a barge-in: Twilio is told to clear at once.
    await call.stream(synthesize(QUESTION, call.rate))
    asked = time.monotonic()
    await call.silence_until(lambda: call.heard.samples(after=asked) > 1.0 * call.rate)
    await call.stream(synthesize(INTERRUPTION, call.rate))
    await call.silence_until(lambda: bool(call.clears))
    cleared = call.clears[0]
    await call.silence(0.3)
    assert call.heard.samples(after=cleared + 0.1, before=cleared + 0.3) == 0
    await call.silence_until(call.quiet_for(0.6, since=cleared))

    # DTMF 1 reads the menu's opening hours; DTMF 0 asks for a person.
    keyed = time.monotonic()
    await call.dtmf("1")
    await call.silence_until(lambda: call.heard.samples(after=keyed) > 0.5 * call.rate)
    await call.dtmf("0")  # over the menu's answer: cleared like speech
    await call.silence_until(lambda: len(call.clears) == 2)
    await call.silence_until(lambda: bool(phones.twilio.updates(call_sid)))
    await call.closed()
    [update] = phones.twilio.updates(call_sid)
    assert update["Twiml"] == (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{TRANSFER_NUMBER}</Dial></Response>'
    )
    request = next(r for r in phones.twilio.requests if r.form is update)
    assert request.path == f"/2010-04-01/Accounts/{twilio_sim.ACCOUNT_SID}/Calls/{call_sid}.json"
    assert request.authorization.startswith("Basic ")
    assert request.at >= call.heard.played_until(call.rate)  # once the line has played

    [record] = _records(phones.server, "twilio", 1)
    assert record["key_id"] == phones.key_id
    assert record["close_reason"] == "transferred"
    assert record["barge_ins"] == 2  # spoken over the answer, then keyed over the menu
    assert int(record["turns"]) >= 4  # question, interruption, 1, 0
    assert float(record["audio_in_seconds"]) > 3


async def test_a_twilio_call_the_agent_hangs_up(phones: Phones) -> None:
    call_sid = twilio_sim.new_call_sid()
    call = await _answer(phones, call_sid)
    await call.silence_until(call.quiet_for(0.6))
    await call.stream(synthesize("Goodbye.", call.rate))
    await call.silence_until(lambda: bool(phones.twilio.updates(call_sid)))
    await call.closed()
    assert phones.twilio.updates(call_sid) == [{"Status": "completed"}]
    [hang_up] = [r for r in phones.twilio.requests if r.path.endswith(f"/{call_sid}.json")]
    assert hang_up.at >= call.heard.played_until(call.rate)  # the goodbye was heard first
    [record] = _records(phones.server, "twilio", 2)[-1:]
    assert record["close_reason"] == "caller_goodbye"
    assert record["key_id"] == phones.key_id


async def test_a_stream_without_the_webhooks_token_is_refused(phones: Phones) -> None:
    twiml = twilio_sim.StreamTwiml(f"wss://{PUBLIC_HOST}/twilio/media", {"voxline_token": "x"})
    call = await TwilioStream.open(phones.server.http, twiml, phones.twilio, "CA" + "1" * 32)
    await call.closed()
    assert call.close_code == 4401


# ---- FreeSWITCH --------------------------------------------------------------------------


def _played(call: AudioStreamChannel, after: float = 0.0) -> float:
    """When FreeSWITCH has played the agent audio the channel got (``after`` the last
    ``uuid_break``, which drops what it held), less one 20 ms frame: nothing reports it, so
    the server goes by its own clock of the audio it paced out."""
    return call.heard.played_until(call.rate, after) - 0.02


def _stream_url(server: RunningServer, token: str = STREAM_TOKEN) -> str:
    return f"ws://127.0.0.1:{server.port}/freeswitch/audio?token={token}"


async def test_a_freeswitch_call_from_greeting_to_transfer(phones: Phones) -> None:
    esl, on_esl = phones.esl, phones.esl_thread.arun
    channel = str(uuid.uuid4())
    call = await AudioStreamChannel.open(
        _stream_url(phones.server), channel, {"session_label": "acme-line"}
    )
    await call.silence_until(call.quiet_for(0.6))
    assert 0.8 * call.rate < call.heard.samples() < 3.5 * call.rate

    await call.stream(synthesize(QUESTION, call.rate))
    asked = time.monotonic()
    await call.silence_until(lambda: call.heard.samples(after=asked) > 1.0 * call.rate)
    await call.stream(synthesize(INTERRUPTION, call.rate))
    await call.silence_until(lambda: f"uuid_break {channel} all" in esl.api_commands)
    interrupted = esl.api_times[esl.api_commands.index(f"uuid_break {channel} all")]
    await call.silence(0.3)
    assert call.heard.samples(after=interrupted + 0.1, before=interrupted + 0.3) == 0
    await call.silence_until(call.quiet_for(0.6, since=interrupted))

    keyed = time.monotonic()
    await on_esl(lambda: esl.dtmf(channel, "1"))
    await call.silence_until(lambda: call.heard.samples(after=keyed) > 0.5 * call.rate)
    await on_esl(lambda: esl.dtmf(channel, "0"))  # over the menu's answer: broken off
    await call.silence_until(lambda: esl.api_commands.count(f"uuid_break {channel} all") == 2)
    await call.silence_until(lambda: call.ended)
    transfer = f"uuid_transfer {channel} {TRANSFER_TARGET}"
    assert transfer in esl.api_commands
    broken = max(t for t, c in zip(esl.api_times, esl.api_commands, strict=True) if "break" in c)
    assert esl.api_times[esl.api_commands.index(transfer)] >= _played(call, after=broken)
    assert not any(c.startswith("uuid_kill") for c in esl.api_commands)

    [record] = _records(phones.server, "freeswitch", 1)
    assert record["session_label"] == "acme-line"
    assert record["close_reason"] == "transferred"
    assert record["barge_ins"] == 2  # spoken over the answer, then keyed over the menu
    assert int(record["turns"]) >= 4


async def test_a_freeswitch_call_the_agent_hangs_up(phones: Phones) -> None:
    channel = str(uuid.uuid4())
    call = await AudioStreamChannel.open(_stream_url(phones.server), channel, {})
    await call.silence_until(call.quiet_for(0.6))
    await call.stream(synthesize("Goodbye.", call.rate))
    await call.silence_until(lambda: call.ended)
    kill = f"uuid_kill {channel} NORMAL_CLEARING"
    assert kill in phones.esl.api_commands
    assert phones.esl.api_times[phones.esl.api_commands.index(kill)] >= _played(call)
    [record] = _records(phones.server, "freeswitch", 2)[-1:]
    assert record["close_reason"] == "caller_goodbye"


async def test_a_freeswitch_caller_hangs_up(phones: Phones) -> None:
    channel = str(uuid.uuid4())
    call = await AudioStreamChannel.open(_stream_url(phones.server), channel, {})
    await call.silence(0.3)
    await phones.esl_thread.arun(lambda: phones.esl.hangup(channel))
    await call.silence_until(lambda: call.ended, timeout=5)
    [record] = _records(phones.server, "freeswitch", 3)[-1:]
    assert record["close_reason"] == "caller_hung_up"
    assert f"uuid_kill {channel} NORMAL_CLEARING" not in phones.esl.api_commands


async def test_an_audio_stream_without_the_token_is_refused(phones: Phones) -> None:
    call = await AudioStreamChannel.open(
        _stream_url(phones.server, token="wrong"), str(uuid.uuid4()), {}
    )
    await call.closed()
    assert call.close_code == 4401
