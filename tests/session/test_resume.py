"""A reply cut off by a sound that held no words goes on (the session with a scripted agent
and the real VAD): from the sentence the caller was hearing, with the rest of the reply and
its call control after it; a sound with words is answered as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from tests.session.test_session import RATE, Line, Receptionist, after
from voxline.audio.pcm import Int16Array
from voxline.bench.speech import synthesize
from voxline.engines.vad import shared_model
from voxline.engines.vad_batch import ThreadInference, VadBatcher
from voxline.protocol.call_control import SendDigits
from voxline.protocol.client_frames import InputText
from voxline.session.agent import CallerTurn, ConversationHost, ReplyPart, SessionInfo, Speech
from voxline.session.session import Session

pytestmark = pytest.mark.e2e

SENTENCES = ("One.", "Two.", "Three.")
FRAME = RATE // 50


def tone(index: int) -> Int16Array:
    """A second of audio whose samples say which sentence it is."""
    return np.full(RATE, 1000 * (index + 1), dtype=np.int16)


class Scripted(Receptionist):
    """Three one-second sentences, then keys to press; the caller's sound after a barge-in
    holds words when ``words`` says so."""

    def __init__(self, host: ConversationHost, words: bool) -> None:
        super().__init__(host)
        self.words = words
        self.turns: list[CallerTurn] = []
        self.heard: list[str] = []
        self.resumed_with: list[str] = []

    async def respond(self, turn: CallerTurn) -> AsyncIterator[ReplyPart]:
        self.turns.append(turn)
        if turn.text is None:
            return  # the caller's spoken turn: nothing to say
        for index, text in enumerate(SENTENCES):
            await asyncio.sleep(0.05)  # the agent works on each piece as the reply plays
            yield Speech(tone(index), text)
        yield SendDigits("42")

    async def holds_words(self, turn: CallerTurn) -> bool:
        await asyncio.sleep(0.1)
        return self.words

    def interrupted(self, heard: str) -> None:
        self.heard.append(heard)

    def resumed(self, said: str) -> None:
        self.resumed_with.append(said)


class Recording(Line):
    def __init__(self) -> None:
        super().__init__()
        self.audio: list[tuple[int, bytes]] = []  # (events before it, chunk)

    async def send_audio(self, pcm: bytes) -> None:
        self.audio.append((len(self.events), pcm))


async def stream(session: Session, audio: Int16Array) -> None:
    for offset in range(0, len(audio), FRAME):
        session.receive_audio(audio[offset : offset + FRAME].tobytes())
        await asyncio.sleep(0.02)


Until = Callable[[Scripted, Recording], bool]


async def call_with_a_sound(
    words: bool, sound: Int16Array, until: Until
) -> tuple[Scripted, Recording]:
    """A typed question; 1.4 s into the reply (its second sentence), ``sound``; then quiet
    until ``until`` holds (at most 6 s)."""
    agents: list[Scripted] = []

    class Agent:
        name = "scripted"

        def conversation(self, info: SessionInfo, host: ConversationHost) -> Scripted:
            agents.append(Scripted(host, words))
            return agents[-1]

        async def aclose(self) -> None:
            pass

    line = Recording()
    quiet = np.zeros(FRAME, np.int16)
    async with VadBatcher(ThreadInference(shared_model())) as vad:
        session = Session(SessionInfo("call_1", None, RATE, RATE), line, Agent(), vad)
        session.start()
        await stream(session, np.zeros(RATE // 5, np.int16))
        await session.receive(InputText("hello"))
        await stream(session, np.zeros(int(1.4 * RATE), np.int16))
        await stream(session, sound)
        for _ in range(300):
            if until(agents[0], line):
                break
            await stream(session, quiet)
        await stream(session, np.zeros(2 * RATE, np.int16))  # and what would come after
        await session.end("done")
    return agents[0], line


@pytest.fixture(scope="module")
def hum() -> Int16Array:
    """A short sound the VAD takes for speech."""
    return synthesize("Hmm.", RATE)


async def test_a_sound_without_words_resumes_the_reply_from_the_sentence_cut_off(
    hum: Int16Array,
) -> None:
    agent, line = await call_with_a_sound(False, hum, lambda agent, line: bool(line.actions))
    names = line.names()
    assert names.count("flush") == 1
    [cut] = agent.heard
    assert cut == "One."  # the second sentence was cut off
    assert agent.resumed_with == ["One. Two. Three."]  # the agent's history, as it goes on
    assert len(agent.turns) == 1  # the sound was not answered
    # A new `turn` (no `turn_begin`: it answers no caller turn), the resumed transcript.
    resumed = names.index("flush")
    assert names[resumed:].count("turn") == 1 and "turn_begin" not in names[resumed:]
    finals = [e["text"] for e in after(line, "transcript") if e["final"]]
    assert finals == ["Two. Three."]
    # Its audio starts at the start of the sentence cut off and plays it and the next out.
    later = [chunk for before, chunk in line.audio if before > names.index("barge_in")]
    samples = np.frombuffer(b"".join(later), np.int16)
    assert samples[0] == 2000 and len(samples) == 2 * RATE
    # The call control it carried comes after the line's audio, as for any reply.
    assert line.actions == [SendDigits("42")]


async def test_a_sound_with_words_is_answered_and_the_reply_stays_cut_off(
    hum: Int16Array,
) -> None:
    agent, line = await call_with_a_sound(True, hum, lambda agent, line: len(agent.turns) > 1)
    assert line.names().count("flush") == 1
    assert len(agent.turns) == 2 and agent.turns[1].audio is not None  # answered
    assert agent.resumed_with == []
    assert line.actions == []  # the cut-off reply's call control is gone with it
    finals = [e["text"] for e in after(line, "transcript") if e["final"]]
    assert finals == []
