"""Twilio's side, without sockets: TwiML, webhook signatures, stream tokens, Media Streams
messages as Twilio documents them."""

from __future__ import annotations

import base64
import json

from tests.support import twilio_sim
from voxline.telephony import twilio_media
from voxline.telephony.twilio_voice import (
    dial_twiml,
    reject_twiml,
    signature_valid,
    stream_token,
    stream_token_valid,
    stream_twiml,
)

URL = "https://voxline.example.test/twilio/voice"
TOKEN = twilio_sim.AUTH_TOKEN


def test_the_answer_connects_a_bidirectional_stream_with_parameters() -> None:
    xml = stream_twiml("wss://voxline.example.test/twilio/media", {"a": "1", "to": "+1 & <2>"})
    assert xml == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        '<Stream url="wss://voxline.example.test/twilio/media">'
        '<Parameter name="a" value="1" /><Parameter name="to" value="+1 &amp; &lt;2&gt;" />'
        "</Stream></Connect></Response>"
    )
    parsed = twilio_sim.parse_stream_twiml(xml)
    assert parsed.parameters == {"a": "1", "to": "+1 & <2>"}


def test_a_call_no_agent_would_serve_is_rejected_unanswered() -> None:
    assert reject_twiml() == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Reject /></Response>'
    )
    assert reject_twiml(busy=True) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy" /></Response>'
    )


def test_a_transfer_dials_the_number() -> None:
    assert dial_twiml("+15550100200") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15550100200</Dial></Response>'
    )


def test_webhook_signatures() -> None:
    params = twilio_sim.call_params("CA" + "2" * 32)
    signature = twilio_sim.sign(URL, params)
    assert signature_valid(TOKEN, URL, params, signature)
    assert not signature_valid("0" * 32, URL, params, signature)
    assert not signature_valid(TOKEN, URL, {**params, "To": "+1"}, signature)
    assert not signature_valid(TOKEN, URL + "?x=1", params, signature)
    assert not signature_valid(TOKEN, URL, params, "")


def test_stream_tokens_bind_a_call_to_the_auth_token() -> None:
    token = stream_token(TOKEN, "CA1")
    assert stream_token_valid(TOKEN, "CA1", token)
    assert not stream_token_valid(TOKEN, "CA2", token)
    assert not stream_token_valid("0" * 32, "CA1", token)
    assert not stream_token_valid(TOKEN, "CA1", "")
    # The token of a stream that names no agent is what it always was.
    assert token == "TyaouXrp8-YT1pcrx0cJg_tdGCFpPHNBVSDbLlkOlhg"


def test_stream_tokens_bind_the_agent_the_webhook_named() -> None:
    token = stream_token(TOKEN, "CA1", "agent_a")
    assert stream_token_valid(TOKEN, "CA1", token, "agent_a")
    assert not stream_token_valid(TOKEN, "CA1", token, "agent_b")
    assert not stream_token_valid(TOKEN, "CA1", token)  # nor the phone calls' own agent
    assert not stream_token_valid(TOKEN, "CA2", token, "agent_a")
    assert not stream_token_valid("0" * 32, "CA1", token, "agent_a")
    # A token naming no agent cannot be made to name one, nor the other way round, however
    # the CallSid and the agent are cut.
    plain = stream_token(TOKEN, "CA1")
    assert not stream_token_valid(TOKEN, "CA1", plain, "agent_a")
    cuts = [("CA1:agent_a", None), ('CA1","agent_a', None), ("CA1:", "agent_a"), ("CA", "1agent_a")]
    for call_sid, agent_id in cuts:
        assert not stream_token_valid(TOKEN, call_sid, token, agent_id), (call_sid, agent_id)
    assert not stream_token_valid(TOKEN, "CA1", plain, "")


def test_media_streams_messages_parse() -> None:
    ulaw = bytes(range(160))
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1",
            "streamSid": "MZ1",
            "callSid": "CA1",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"from": "+1555"},
        },
        "streamSid": "MZ1",
    }
    media = {
        "event": "media",
        "sequenceNumber": "3",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "5",
            "payload": base64.b64encode(ulaw).decode(),
        },
        "streamSid": "MZ1",
    }
    dtmf = {
        "event": "dtmf",
        "streamSid": "MZ1",
        "sequenceNumber": "5",
        "dtmf": {"track": "inbound_track", "digit": "1"},
    }
    mark = {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ1", "mark": {"name": "320"}}
    stop = {"event": "stop", "sequenceNumber": "6", "streamSid": "MZ1", "stop": {"callSid": "CA1"}}
    connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert twilio_media.parse(json.dumps(connected)) == twilio_media.Connected()
    assert twilio_media.parse(json.dumps(start)) == twilio_media.Start(
        "MZ1", "CA1", {"from": "+1555"}, "audio/x-mulaw", 8000
    )
    assert twilio_media.parse(json.dumps(media)) == twilio_media.Media(ulaw)
    assert twilio_media.parse(json.dumps(dtmf)) == twilio_media.Dtmf("1")
    assert twilio_media.parse(json.dumps(mark)) == twilio_media.Mark("320")
    assert twilio_media.parse(json.dumps(stop)) == twilio_media.Stop()


def test_malformed_messages_are_none() -> None:
    for text in [
        "not json",
        "[]",
        '{"event": "start", "start": {}}',
        '{"event": "media", "media": {"payload": "***"}}',
        '{"event": "media", "media": {"track": "outbound", "payload": ""}}',
        '{"event": "dtmf", "dtmf": {"digit": "12"}}',
        '{"event": "mark", "mark": {}}',
        '{"event": "something_new"}',
    ]:
        assert twilio_media.parse(text) is None, text


def test_messages_to_twilio() -> None:
    assert json.loads(twilio_media.media("MZ1", b"\xff\x7f")) == {
        "event": "media",
        "streamSid": "MZ1",
        "media": {"payload": "/38="},
    }
    assert json.loads(twilio_media.mark("MZ1", "160")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "160"},
    }
    assert json.loads(twilio_media.clear("MZ1")) == {"event": "clear", "streamSid": "MZ1"}
