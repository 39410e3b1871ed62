"""The session engine with a scripted agent: replies cut off by keys, and the end of a call
the caller talks over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import numpy as np
import pytest

from voxline.audio.pcm import Int16Array
from voxline.engines.vad import shared_model
from voxline.engines.vad_batch import ThreadInference, VadBatcher
from voxline.protocol.client_frames import Dtmf, InputText
from voxline.protocol.events import Event
from voxline.session.agent import (
    CallerTurn,
    ConfigureReport,
    ConversationHost,
    SessionInfo,
    Speech,
)
from voxline.session.session import Session

RATE = 16000


class Line:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.clears = 0
        self.closed: tuple[int, str] | None = None

    async def send_event(self, event: Event) -> None:
        self.events.append(event)

    async def send_audio(self, pcm: bytes) -> None:
        pass

    async def clear_audio(self) -> None:
        self.clears += 1

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

    def turn_complete(self) -> bool:
        return False

    async def respond(self, turn: CallerTurn) -> AsyncIterator[Speech]:
        if turn.text == "bye":
            self.host.end_after_reply("caller_goodbye")
        yield Speech(
            np.full(2 * RATE, 500, dtype=np.int16), f"Reply to {turn.text or turn.digits}."
        )

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


async def test_a_goodbye_heard_out_ends_the_call(call: tuple[Session, Line]) -> None:
    session, line = call
    await session.receive(InputText("bye"))
    await asyncio.wait_for(session.ended.wait(), 5)
    assert session.end_reason == "caller_goodbye" and line.closed == (1000, "caller_goodbye")
