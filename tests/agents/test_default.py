"""The default agent's reply drafts, with its engines faked to isolate the unit (the agent
end-to-end tests run it on the real models)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import numpy as np

from tests.support.examples import ACME_DENTAL
from voxline.agents.default import DefaultAgent, DefaultConversation, Engines
from voxline.agents.profiles import changes, knowledge_of
from voxline.audio.pcm import Float32Array, Int16Array
from voxline.engines.brain import BrainOutput, BrainRequest, TextDelta, ToolRunner
from voxline.engines.knowledge import KnowledgeBase
from voxline.engines.responder import KnowledgeResponder
from voxline.engines.speech_cache import CachingSynthesizer
from voxline.engines.stt import Transcript
from voxline.engines.voices import VoiceLibrary
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.client_frames import SessionConfig, Tool, ToolResult
from voxline.protocol.events import Event
from voxline.session.agent import CallerTurn, SessionInfo, Speech
from voxline.session.turns import Finished

RATE = 16000


class ScriptedStt:
    def __init__(self, text: str) -> None:
        self.text = text
        self.decodes = 0
        self.prompts: list[str | None] = []

    async def transcribe(
        self, audio: Float32Array, *, prompt: str | None = None, partial: bool = False
    ) -> Transcript:
        self.decodes += 1
        self.prompts.append(prompt)
        await asyncio.sleep(0.01)
        return Transcript(self.text, audio.size / RATE, 0.01)

    async def aclose(self) -> None:
        pass


class SilentTts:
    sample_rate = RATE

    def __init__(self) -> None:
        self.said: list[str] = []

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        self.said.append(text)
        return np.ones(RATE // 10, dtype=np.int16)

    async def aclose(self) -> None:
        pass


class ToolFirstBrain:
    """Looks something up with the session's first tool, then answers."""

    def __init__(self) -> None:
        self.requests: list[BrainRequest] = []
        self.closed = 0

    async def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]:
        self.requests.append(request)
        try:
            if request.tools:
                await tools(request.tools[0].name, {"q": request.user_text})
            yield TextDelta("We open at nine. ")
            yield TextDelta("And we close at five.")
        finally:
            self.closed += 1


class Host:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.waiters: dict[str, asyncio.Future[ToolResult]] = {}

    async def send_event(self, event: Event) -> None:
        self.events.append(event)

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]:
        future: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self.waiters[call_id] = future
        return future

    def names(self) -> list[str]:
        return [str(event["event"]) for event in self.events]


AUDIO = np.full(RATE, 1000, dtype=np.int16)
HOURS_TOOL = Tool("hours", "opening hours", {"type": "object"})


def scripted_engines(
    stt: ScriptedStt, brain: ToolFirstBrain, knowledge: KnowledgeBase | None = None
) -> Engines:
    return Engines(
        stt=stt,
        voices=VoiceLibrary.single(SilentTts()),
        brain=brain,
        knowledge=knowledge,
        http=httpx.AsyncClient(),
    )


def conversation(
    text: str, tools: list[Tool] | None = None
) -> tuple[DefaultConversation, ScriptedStt, ToolFirstBrain, Host]:
    stt, brain, host = ScriptedStt(text), ToolFirstBrain(), Host()
    engines = scripted_engines(stt, brain)
    info = SessionInfo("call_1", None, RATE, RATE, SessionConfig(tools=tuple(tools or ())))
    convo = DefaultConversation(info, host, engines)
    convo.configure(info)
    return convo, stt, brain, host


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.005)


async def collect(convo: DefaultConversation, turn: CallerTurn) -> list[Speech]:
    return [part async for part in convo.respond(turn) if isinstance(part, Speech)]


async def test_the_pause_drafts_the_reply_and_the_turn_commits_it_without_a_second_decode() -> None:
    convo, stt, _brain, host = conversation("When do you open?")
    convo.hear(lambda: AUDIO, paused=True)
    await settle()
    assert convo.turn_finished() is Finished.QUESTION
    assert host.events == []  # a draft says nothing until its turn is confirmed
    turn = CallerTurn(audio=AUDIO)
    spoken = await collect(convo, turn)
    assert stt.decodes == 1
    assert [s.text for s in spoken] == ["We open at nine.", "And we close at five."]
    assert host.events[0] == {
        "event": "transcript",
        "role": "user",
        "text": "When do you open?",
        "final": True,
    }
    assert turn.timings.transcribed is not None and turn.timings.first_token is not None


async def test_speech_after_the_pause_drops_the_draft_unheard_and_without_effects() -> None:
    convo, _stt, brain, host = conversation("When do you open?", tools=[HOURS_TOOL])
    convo.hear(lambda: AUDIO, paused=True)
    await settle()
    assert brain.requests and host.waiters == {}  # the tool waits for the turn to be confirmed
    convo.hear(lambda: AUDIO, paused=False)  # the caller goes on talking
    await settle()
    assert convo.turn_finished() is Finished.NO
    assert "tool_call" not in host.names() and brain.closed == 1
    await convo.aclose()


async def test_a_committed_draft_runs_its_tools() -> None:
    convo, _, brain, host = conversation("When do you open?", tools=[HOURS_TOOL])
    convo.hear(lambda: AUDIO, paused=True)
    await settle()
    reply = asyncio.create_task(collect(convo, CallerTurn(audio=AUDIO)))
    await settle()
    assert host.names() == ["tool_call"]
    (call_id,) = host.waiters
    host.waiters[call_id].set_result(ToolResult(call_id, "9 to 5", None))
    assert [s.text for s in await reply] == ["We open at nine.", "And we close at five."]
    assert brain.closed == 1


async def test_an_unfinished_sentence_does_not_end_the_turn_early() -> None:
    convo, *_ = conversation("I'd like to book an appointment for")
    convo.hear(lambda: AUDIO, paused=True)
    await settle()
    assert convo.turn_finished() is Finished.NO
    await convo.aclose()


async def test_a_finished_statement_is_weaker_evidence_than_a_question() -> None:
    convo, *_ = conversation("I'd like to talk to a person, please.")
    convo.hear(lambda: AUDIO, paused=True)
    await settle()
    assert convo.turn_finished() is Finished.STATEMENT
    await convo.aclose()


async def test_typed_text_drops_a_pending_draft_and_answers_the_text() -> None:
    convo, _stt, brain, host = conversation("When do you open?")
    convo.hear(lambda: AUDIO, paused=True)
    spoken = await collect(convo, CallerTurn(text="Are you open today?"))
    assert spoken and brain.requests[-1].user_text == "Are you open today?"
    finals: list[Any] = [e["text"] for e in host.events if e["event"] == "transcript"]
    assert finals == ["Are you open today?"]


async def test_warming_puts_the_greeting_and_first_clauses_of_answers_in_the_speech_cache() -> None:
    knowledge = KnowledgeBase.load(ACME_DENTAL)
    responder = KnowledgeResponder(knowledge)
    tts = SilentTts()
    engines = Engines(
        stt=ScriptedStt("When are you open?"),
        voices=VoiceLibrary.single(CachingSynthesizer(tts)),
        brain=responder,
        knowledge=knowledge,
        http=httpx.AsyncClient(),
        likely_lines=responder.likely_lines(),
    )
    agent = DefaultAgent(engines)
    await agent.warm()
    warmed = len(tts.said)
    assert knowledge.greeting is not None and knowledge.greeting.startswith(tts.said[0])
    assert any(said.startswith("We're open Monday to Thursday") for said in tts.said)

    info = SessionInfo("call_1", None, RATE, RATE)
    convo = agent.conversation(info, Host())
    convo.configure(info)
    greeting = convo.greeting()
    assert greeting is not None and [s async for s in greeting]
    spoken = await collect(convo, CallerTurn(text="What are your opening hours?"))
    assert spoken[0].text.startswith("We're open Monday to Thursday")
    assert len(tts.said) == warmed + len(spoken) - 1  # only the pieces after the first
    await agent.aclose()


async def test_a_session_from_a_stored_agent_has_its_knowledge_and_vocabulary() -> None:
    """The agent's own knowledge replaces the server's for its sessions, and its vocabulary
    leads the recognition prompt."""
    knowledge = {
        "greeting": "Thanks for calling Bright Smiles.",
        "entries": [{"question": "Do you do Invisalign?", "answer": "Yes, we do."}],
    }
    text = changes({"knowledge": knowledge}, creating=False)["knowledge"]
    agent = AgentProfile(
        id="agent_1", owner="o", name="n", knowledge=text, vocabulary=("Nguyen", "Invisalign")
    )
    stt, brain, host = ScriptedStt("Do you do Invisalign?"), ToolFirstBrain(), Host()
    server_knowledge = KnowledgeBase.load(ACME_DENTAL)
    engines = scripted_engines(stt, brain, server_knowledge)
    await DefaultAgent(engines).prepare(agent)
    info = SessionInfo("call_1", None, RATE, RATE)
    info.start_from(agent)
    convo = DefaultConversation(info, host, engines)
    report = convo.configure(info)
    assert report.greeting and report.kb
    greeting = convo.greeting()
    assert greeting is not None
    assert [speech.text async for speech in greeting] == ["Thanks for calling Bright Smiles."]
    await collect(convo, CallerTurn(audio=AUDIO))
    prompt = stt.prompts[-1]
    assert prompt is not None and prompt.startswith("Nguyen, Invisalign")
    [request] = brain.requests
    assert request.knowledge_base is knowledge_of(agent)
    assert request.knowledge_base is not server_knowledge
