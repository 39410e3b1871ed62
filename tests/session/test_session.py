"""The session engine with a scripted agent: replies cut off by keys, and the end of a call
the caller talks over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

from voxline.audio.pcm import Int16Array
from voxline.bench.speech import synthesize
from voxline.engines.vad import shared_model
from voxline.engines.vad_batch import ThreadInference, VadBatcher
from voxline.protocol.call_control import CallControl, HangUp, SendDigits, Transfer
from voxline.protocol.client_frames import Dtmf, InputText
from voxline.protocol.events import Event
from voxline.session.agent import (
    CallerTurn,
    ConfigureReport,
    ConversationHost,
    ReplyPart,
    SessionInfo,
    Speech,
)
from voxline.session.pacing import TYPED_TURNS_BURST
from voxline.session.session import Session
from voxline.session.turns import Finished

pytestmark = pytest.mark.e2e

RATE = 16000


class Line:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.clears = 0
        self.closed: tuple[int, str] | None = None
        self.actions: list[CallControl] = []

    async def send_event(self, event: Event) -> None:
        self.events.append(event)

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def clear_audio(self) -> None:
        self.clears += 1

    async def transfer(self, request: Transfer) -> bool:
        self.actions.append(request)
        return False

    async def hang_up(self, request: HangUp) -> None:
        self.actions.append(request)

    async def send_digits(self, request: SendDigits) -> None:
        self.actions.append(request)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def names(self) -> list[str]:
        return [str(event["event"]) for event in self.events]


class Receptionist:
    """Two seconds of speech for every turn; "bye" ends the call after the goodbye."""

    def __init__(self, host: ConversationHost) -> None:
        self.host = host

    def configure(self, info: SessionInfo) -> ConfigureReport:
        return ConfigureReport()

    def greeting(self) -> AsyncIterator[Speech] | None:
        return None

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        pass

    def turn_finished(self) -> Finished:
        return Finished.NO

    async def respond(self, turn: CallerTurn) -> AsyncIterator[ReplyPart]:
        yield Speech(
            np.full(2 * RATE, 500, dtype=np.int16), f"Reply to {turn.text or turn.digits}."
        )
        if turn.text == "bye":
            yield HangUp("caller_goodbye")

    def interrupted(self, heard: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


class ReceptionistAgent:
    name = "receptionist"

    def conversation(self, info: SessionInfo, host: ConversationHost) -> Receptionist:
        return Receptionist(host)

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def call() -> AsyncIterator[tuple[Session, Line]]:
    line = Line()
    async with VadBatcher(ThreadInference(shared_model())) as vad:
        session = Session(SessionInfo("call_1", None, RATE, RATE), line, ReceptionistAgent(), vad)
        session.start()
        yield session, line
        await session.end("done")


def after(line: Line, name: str) -> Iterator[Event]:
    return (event for event in line.events if event["event"] == name)


async def test_a_key_pressed_over_a_reply_interrupts_it(call: tuple[Session, Line]) -> None:
    session, line = call
    await session.receive(InputText("hello"))
    await asyncio.sleep(0.5)
    await session.receive(Dtmf("1"))
    [flush] = after(line, "flush")
    assert flush["reason"] == "dtmf" and line.clears == 1
    [interrupted] = after(line, "assistant_interrupted")
    assert interrupted["reply"] == ""  # 0.5 s of a one-sentence reply: no whole word heard
    assert line.names().index("dtmf") < line.names().index("flush")
    assert session.stats.barge_ins == 1


async def test_a_goodbye_the_caller_talks_over_does_not_end_the_call(
    call: tuple[Session, Line],
) -> None:
    session, line = call
    await session.receive(InputText("bye"))
    await asyncio.sleep(0.5)
    await session.receive(InputText("wait, one more thing"))
    await asyncio.sleep(2.5)  # the second reply plays out
    assert "flush" in line.names()
    assert session.end_reason is None and line.closed is None
    assert line.actions == []


async def test_a_goodbye_heard_out_ends_the_call(call: tuple[Session, Line]) -> None:
    session, line = call
    await session.receive(InputText("bye"))
    await asyncio.sleep(1.0)
    assert line.actions == []  # not while "Goodbye" is still being heard
    await asyncio.wait_for(session.ended.wait(), 5)
    assert line.actions == [HangUp("caller_goodbye")]
    assert session.end_reason == "caller_goodbye" and line.closed == (1000, "caller_goodbye")


class Judging(Receptionist):
    """Sounds ``finished`` from the caller's first pause; notes when it is asked to reply."""

    def __init__(self, host: ConversationHost, finished: Finished) -> None:
        super().__init__(host)
        self.finished = finished
        self.paused = False
        self.replying = asyncio.Event()

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        self.paused = self.paused or paused

    def turn_finished(self) -> Finished:
        return self.finished if self.paused else Finished.NO

    async def respond(self, turn: CallerTurn) -> AsyncIterator[ReplyPart]:
        self.replying.set()
        yield Speech(np.zeros(RATE // 10, dtype=np.int16))


@pytest.mark.parametrize(
    ("finished", "ends_after_ms"),
    [(Finished.QUESTION, 250), (Finished.STATEMENT, 400), (Finished.NO, 500)],
)
async def test_a_turn_ends_after_the_silence_its_words_call_for(
    finished: Finished, ends_after_ms: int
) -> None:
    judging: list[Judging] = []

    class JudgingAgent(ReceptionistAgent):
        def conversation(self, info: SessionInfo, host: ConversationHost) -> Judging:
            judging.append(Judging(host, finished))
            return judging[-1]

    speech = synthesize("What time do you open tomorrow?", RATE)
    frame = RATE // 50
    async with VadBatcher(ThreadInference(shared_model())) as vad:
        session = Session(SessionInfo("call_1", None, RATE, RATE), Line(), JudgingAgent(), vad)
        session.start()
        for offset in range(0, len(speech), frame):
            session.receive_audio(speech[offset : offset + frame].tobytes())
            await asyncio.sleep(0.002)
        silent_frames = 0
        while not judging[0].replying.is_set() and silent_frames < 100:
            session.receive_audio(bytes(2 * frame))
            silent_frames += 1
            await asyncio.sleep(0.004)
        await session.end("done")
    loud = np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max())
    silence_ms = silent_frames * 20 + (len(speech) - loud[-1]) / RATE * 1000
    # The VAD's hangover after the last loud sample comes on top: about 100 ms.
    assert ends_after_ms <= silence_ms <= ends_after_ms + 150


async def test_speech_over_a_reply_stops_it_within_a_few_windows(
    call: tuple[Session, Line],
) -> None:
    """Real speech under the agent's voice: `flush` once the VAD is sure of it (a window at
    0.9, well before the 128 ms fallback), counted in caller stream time."""
    session, line = call
    await session.receive(InputText("hello"))
    frame = RATE // 50
    quiet = np.zeros(frame, np.int16)
    for _ in range(25):  # half a second of the reply, the line quiet
        session.receive_audio(quiet.tobytes())
        await asyncio.sleep(0.02)
    speech = synthesize("Sorry, could you repeat the opening hours?", RATE)
    onset = int(np.flatnonzero(np.abs(speech) > 0.02 * np.abs(speech).max())[0])
    sent_after_onset = 0
    vad = session._caller.vad
    for offset in range(0, len(speech), frame):
        session.receive_audio(speech[offset : offset + frame].tobytes())
        if offset + frame > onset:
            sent_after_onset += 1
        # Before the next frame, let the VAD decide on every whole window sent so far.
        sent = (25 * frame + offset + frame) / RATE
        for _ in range(400):
            if "flush" in line.names() or vad.processed_seconds > sent - vad.window_seconds:
                break
            await asyncio.sleep(0.005)
        if "flush" in line.names():
            break
    [flush] = after(line, "flush")
    assert flush["reason"] == "barge_in"
    assert sent_after_onset * 20 <= 120  # a 96 ms rule on its own took 110–175 ms
    assert session.stats.barge_ins == 1


async def test_typed_turns_beyond_their_budget_are_dropped_with_an_error(
    call: tuple[Session, Line],
) -> None:
    """300 typed turns at once must not become 300 requests to the brain."""
    session, line = call
    for index in range(30):
        await session.receive(InputText(f"question {index}"))
    refused = [event for event in after(line, "error") if event["code"] == "rate_limit_exceeded"]
    assert session.turns == TYPED_TURNS_BURST
    assert len(refused) == 30 - TYPED_TURNS_BURST
    assert session.end_reason is None  # the session goes on
