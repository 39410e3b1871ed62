"""The echo agent: a loopback test line for client developers.

It replays each caller utterance, resampled to the session's output rate, through the same
turn-taking, playout and barge-in machinery every agent uses, so a client that hears itself
and sees ``flush`` when it interrupts has the whole audio loop right.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from voxline.audio.pcm import Int16Array
from voxline.audio.resample import resample
from voxline.protocol.agent_profile import AgentProfile
from voxline.session.agent import (
    CallerTurn,
    ConfigureReport,
    ConversationHost,
    SessionInfo,
    Speech,
)
from voxline.session.turns import Finished


class EchoConversation:
    def __init__(self, info: SessionInfo) -> None:
        self._info = info

    def configure(self, info: SessionInfo) -> ConfigureReport:
        self._info = info
        config = info.config
        return ConfigureReport(voice_id=config.voice_id, language=config.language)

    def greeting(self) -> AsyncIterator[Speech] | None:
        return None

    def hear(self, utterance: Callable[[], Int16Array], *, paused: bool) -> None:
        """The echo needs the whole turn, at its end."""

    def turn_finished(self) -> Finished:
        return Finished.NO  # no words: the full endpointing silence ends every turn

    async def respond(self, turn: CallerTurn) -> AsyncIterator[Speech]:
        if turn.audio is not None and turn.audio.size:
            yield Speech(resample(turn.audio, self._info.in_rate, self._info.out_rate))

    def interrupted(self, heard: str) -> None:
        """Nothing to remember: the echo line keeps no history."""

    async def holds_words(self, turn: CallerTurn) -> bool:
        """Whatever the caller made is echoed, a cough too: a loopback line never resumes."""
        return True

    def resumed(self, said: str) -> None:
        pass

    async def aclose(self) -> None:
        pass


class EchoAgent:
    name = "echo"

    def conversation(self, info: SessionInfo, host: ConversationHost) -> EchoConversation:
        return EchoConversation(info)

    async def prepare(self, agent: AgentProfile) -> None:
        """The echo line uses nothing of a profile but its settings."""

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
