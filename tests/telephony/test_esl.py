"""The Event Socket: the pure parser, and the asyncio client against a server speaking the
real protocol (auth, subscription, api replies, events, disconnects and reconnects)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.freeswitch_sim import FakeEventSocket, esl_message, event_plain, reply
from voxline.telephony.esl import EslError, EventSocket
from voxline.telephony.esl_protocol import (
    EslParser,
    EslProtocolError,
    command,
    parse_event_plain,
)

# As FreeSWITCH frames them: an api reply with a body, a DTMF event in plain text.
API_RESPONSE = b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n"
DTMF_EVENT = (
    b"Content-Length: 146\nContent-Type: text/event-plain\n\n"
    b"Event-Name: DTMF\nCore-UUID: 4f37\nUnique-ID: 9a1e-42\n"
    b"Caller-Caller-ID-Name: Jane%20Doe\nDTMF-Digit: %23\nDTMF-Duration: 2000\n"
    b"Content-Length: 5\n\nhello"
)


def test_messages_split_anywhere_come_out_whole() -> None:
    stream = reply("+OK accepted") + API_RESPONSE + DTMF_EVENT
    assert len(DTMF_EVENT.split(b"\n\n", 1)[1]) == 146
    for step in (1, 3, 7, len(stream)):
        parser = EslParser()
        messages = []
        for offset in range(0, len(stream), step):
            messages += parser.feed(stream[offset : offset + step])
        assert [m.content_type for m in messages] == [
            "command/reply",
            "api/response",
            "text/event-plain",
        ]
        assert messages[0].reply_text == "+OK accepted"
        assert messages[1].body == b"+OK\n"
        event = parse_event_plain(messages[2].body)
        assert event.name == "DTMF"
        assert event.unique_id == "9a1e-42"
        assert event.headers["DTMF-Digit"] == "#"
        assert event.headers["Caller-Caller-ID-Name"] == "Jane Doe"
        assert event.body == "hello"


def test_blank_lines_between_messages_are_skipped() -> None:
    parser = EslParser()
    assert len(parser.feed(b"\n" + reply("+OK") + b"\n\n" + reply("-ERR no"))) == 2


def test_bad_framing_is_an_error() -> None:
    with pytest.raises(EslProtocolError):
        EslParser().feed(b"Content-Length: lots\n\n")
    with pytest.raises(EslProtocolError):
        EslParser().feed(b"no colon here\n\n")
    with pytest.raises(EslProtocolError):
        EslParser().feed(b"X" * 70_000)


def test_commands_are_one_line_and_a_blank_one() -> None:
    assert command("api uuid_break abc all") == b"api uuid_break abc all\n\n"
    with pytest.raises(ValueError):
        command("api uuid_kill abc\n\nauth other")


def test_simulator_events_parse_back() -> None:
    [message] = EslParser().feed(event_plain({"Event-Name": "CHANNEL_HANGUP", "Unique-ID": "u 1"}))
    assert parse_event_plain(message.body).headers == {
        "Event-Name": "CHANNEL_HANGUP",
        "Unique-ID": "u 1",
    }
    assert esl_message({"Content-Type": "x"}, b"ab") == b"Content-Length: 2\nContent-Type: x\n\nab"


@pytest.fixture
async def freeswitch() -> AsyncIterator[FakeEventSocket]:
    server = FakeEventSocket()
    await server.start()
    yield server
    await server.stop()


async def _client(server: FakeEventSocket, password: str = "ClueCon") -> EventSocket:
    client = EventSocket(
        "127.0.0.1", server.port, password, timeout=1.0, reconnect_delays=(0.05, 0.1)
    )
    client.start()
    return client


async def test_auth_subscription_and_api(freeswitch: FakeEventSocket) -> None:
    client = await _client(freeswitch)
    try:
        assert await client.api("uuid_break abc all") == "+OK"
        assert freeswitch.commands[:3] == [
            "auth ClueCon",
            "event plain DTMF CHANNEL_HANGUP",
            "api uuid_break abc all",
        ]
        with pytest.raises(EslError, match="no such command"):
            await client.api("status")
        replies = await asyncio.gather(*(client.api(f"uuid_send_dtmf c{i} 1") for i in range(5)))
        assert replies == ["+OK"] * 5  # in order, each to its own command
    finally:
        await client.aclose()


async def test_events_reach_the_channels_listener(freeswitch: FakeEventSocket) -> None:
    client = await _client(freeswitch)
    try:
        await asyncio.wait_for(client.connected.wait(), 2)
        mine = client.listen("chan-1")
        other = client.listen("chan-2")
        await freeswitch.dtmf("chan-1", "5")
        await freeswitch.hangup("chan-1")
        dtmf = await asyncio.wait_for(mine.get(), 2)
        assert (dtmf.name, dtmf.headers["DTMF-Digit"]) == ("DTMF", "5")
        assert (await asyncio.wait_for(mine.get(), 2)).name == "CHANNEL_HANGUP"
        assert other.empty()
        client.unlisten("chan-1")
        await freeswitch.dtmf("chan-1", "6")
        await client.api("uuid_break chan-1")  # the event came before this reply
        assert mine.empty()
    finally:
        await client.aclose()


async def test_reconnects_after_freeswitch_goes_away(freeswitch: FakeEventSocket) -> None:
    client = await _client(freeswitch)
    try:
        await asyncio.wait_for(client.connected.wait(), 2)
        await freeswitch.drop_connections()
        await asyncio.sleep(0.01)
        assert await client.api("uuid_kill abc") == "+OK"  # waits for the new connection
        assert client.connections == freeswitch.logins == 2
    finally:
        await client.aclose()


async def test_a_wrong_password_never_connects(freeswitch: FakeEventSocket) -> None:
    client = await _client(freeswitch, password="wrong")
    try:
        with pytest.raises(EslError, match="no answer"):
            await client.api("uuid_break abc")
        assert client.connections == 0
        assert freeswitch.commands.count("auth wrong") >= 2  # it keeps trying, with a delay
    finally:
        await client.aclose()


async def test_no_freeswitch_fails_commands_in_time() -> None:
    server = FakeEventSocket()
    await server.start()
    await server.stop()  # a port nobody listens on
    client = await _client(server)
    try:
        with pytest.raises(EslError):
            await client.api("uuid_break abc")
    finally:
        await client.aclose()
