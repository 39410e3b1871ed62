"""A session chooses the default agent's voice with ``voice_id``: a voice the server has speaks
its replies; one it does not have is ignored, with a warning, and the default speaks."""

from __future__ import annotations

import pytest

from tests.support.caller import Caller
from tests.support.server import RunningServer
from tests.support.voices import SLOW_LENGTH_SCALE, SLOW_VOICE_ID
from voxline.engines.voices import PACKAGED_VOICE_ID

pytestmark = pytest.mark.e2e

GREETING = "Thanks for calling, this is the front desk of the clinic."
RATE = 24000


@pytest.fixture(scope="module")
def server(voices_server: RunningServer) -> RunningServer:
    return voices_server


async def greeted(server: RunningServer, **configure: object) -> Caller:
    """A session configured with ``configure``, once its greeting has been heard."""
    key = server.create_key()
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure", "greeting": GREETING, **configure})
    await caller.silence_until(
        lambda got: any(
            event["event"] == "transcript" and event["role"] == "assistant" and event["final"]
            for _, event in got.events
        )
    )
    await caller.close()
    return caller


async def test_the_chosen_voice_speaks_and_an_unknown_one_is_ignored(
    server: RunningServer,
) -> None:
    default = await greeted(server)
    slow = await greeted(server, voice_id=SLOW_VOICE_ID)
    unknown = await greeted(server, voice_id="stock_emma_en_gb")

    assert slow.got.first("configured")["voice_id"] == SLOW_VOICE_ID
    assert "voice_id" in slow.got.first("config_ack")["honored"]
    assert "warning" not in slow.got.names()
    ratio = slow.got.audio_bytes() / default.got.audio_bytes()
    print(f"the slow voice's greeting is {ratio:.2f} times as long")
    assert 0.8 * SLOW_LENGTH_SCALE < ratio < 1.1 * SLOW_LENGTH_SCALE

    ack = unknown.got.first("config_ack")
    assert "voice_id" in ack["ignored"] and "voice_id" not in ack["honored"]
    assert ack["voice_id"] == unknown.got.first("configured")["voice_id"] == PACKAGED_VOICE_ID
    warning = unknown.got.first("warning")
    assert warning["code"] == "unknown_voice" and "stock_emma_en_gb" in warning["message"]
    assert unknown.got.audio_bytes() == pytest.approx(default.got.audio_bytes(), rel=0.1)
