"""The recognition prompt: what goes in it, in which order, within its bound; and the
default agent passing it to the transcriber of the session's rate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import httpx
import numpy as np
import pytest

from voxline.agents.default import DefaultConversation, Engines
from voxline.audio.pcm import Float32Array, Int16Array
from voxline.engines.brain import BrainOutput, BrainRequest, ToolRunner
from voxline.engines.knowledge import KnowledgeBase
from voxline.engines.stt import Transcript, drop_repeats
from voxline.engines.stt_prompt import (
    MAX_CHARS,
    build_prompt,
    content_words,
    knowledge_vocabulary,
    names,
)
from voxline.engines.voices import VoiceLibrary
from voxline.protocol.client_frames import SessionConfig, Tool, ToolResult
from voxline.protocol.events import Event
from voxline.session.agent import CallerTurn, SessionInfo

KNOWLEDGE = KnowledgeBase.from_dict(
    {
        "name": "Maple Grove Animal Hospital",
        "entries": [
            {
                "question": "Do you take Trupanion?",
                "alternates": ["Does my puppy need bordetella?"],
                "answer": "Yes, Doctor Okonkwo and Doctor Lindqvist see dogs, and Doctor "
                "Okonkwo also sees cats.",
            },
            {"title": "Refills", "passage": "We stock Apoquel. Call Tamsin for refills."},
        ],
    }
)


def test_names_are_capitalised_runs_less_a_sentence_s_first_word() -> None:
    text = "Yes, Doctor Ramirez sees birds. Call Maple Grove on Monday. The NexGard is in."
    assert names(text) == ["Doctor Ramirez", "Maple Grove", "Monday", "NexGard"]


def test_content_words_leave_out_function_words() -> None:
    assert content_words("Could you tell me about the bordetella vaccine?") == [
        "bordetella",
        "vaccine",
    ]


def test_knowledge_vocabulary_puts_the_business_and_frequent_names_first() -> None:
    vocabulary = knowledge_vocabulary(KNOWLEDGE)
    assert vocabulary[:3] == ("Maple Grove Animal Hospital", "Doctor Okonkwo", "Trupanion")
    assert {"Doctor Lindqvist", "Apoquel", "Tamsin", "bordetella", "puppy"} <= set(vocabulary)
    assert knowledge_vocabulary(KNOWLEDGE) is vocabulary  # once per knowledge base


def test_the_prompt_is_a_glossary_in_priority_order_then_the_last_reply() -> None:
    prompt = build_prompt(
        persona="You answer for Doctor Okonkwo.",
        tool_names=["book_visit"],
        passages=["Ask Gareth about Scratchpay."],
        vocabulary=["Apoquel", "doctor okonkwo"],
        last_reply="Would Tuesday the fourteenth suit you?",
    )
    assert prompt == (
        "book visit, Doctor Okonkwo, Gareth, Scratchpay, Apoquel. "
        "Would Tuesday the fourteenth suit you?"
    )


def test_the_prompt_is_bounded_and_keeps_the_end_of_a_long_reply() -> None:
    reply = "We are open from eight. " * 20 + "Shall I book Doctor Lindqvist?"
    prompt = build_prompt(vocabulary=[f"Term{i}" for i in range(200)], last_reply=reply)
    assert prompt is not None
    assert len(prompt) <= MAX_CHARS
    assert prompt.startswith("Term0, Term1,")
    assert prompt.endswith("Shall I book Doctor Lindqvist?")


def test_no_prompt_without_anything_to_say() -> None:
    assert build_prompt() is None
    assert build_prompt(persona="you are helpful.", last_reply="  ") is None


class PromptedStt:
    def __init__(self, text: str) -> None:
        self.text = text
        self.prompts: list[str | None] = []

    async def transcribe(
        self, audio: Float32Array, *, prompt: str | None = None, partial: bool = False
    ) -> Transcript:
        self.prompts.append(prompt)
        return Transcript(self.text, audio.size / 16000, 0.0)

    async def aclose(self) -> None:
        pass


class MuteTts:
    sample_rate = 16000

    async def synthesize(self, text: str, *, batch: bool = False) -> Int16Array:
        return np.zeros(0, dtype=np.int16)

    async def aclose(self) -> None:
        pass


class NoBrain:
    async def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]:
        return
        yield


class Host:
    async def send_event(self, event: Event) -> None:
        pass

    def wait_tool_result(self, call_id: str) -> asyncio.Future[ToolResult]:
        raise AssertionError("no tools run")


async def heard_by(rate: int) -> tuple[PromptedStt, PromptedStt]:
    wideband, telephone = PromptedStt("wideband"), PromptedStt("telephone")
    engines = Engines(
        stt=wideband,
        voices=VoiceLibrary.single(MuteTts()),
        brain=NoBrain(),
        knowledge=KNOWLEDGE,
        http=httpx.AsyncClient(),
        stt_8k=telephone,
    )
    config = SessionConfig(persona="Reception of Maple Grove.", tools=(Tool("book_visit", "", {}),))
    info = SessionInfo("call_1", None, rate, rate, config=config)
    conversation = DefaultConversation(info, Host(), engines)
    conversation.configure(info)
    turn = CallerTurn(audio=np.full(rate, 500, dtype=np.int16))
    assert [speech async for speech in conversation.respond(turn)] == []
    return wideband, telephone


async def test_the_agent_passes_the_prompt_to_the_transcriber_of_its_rate() -> None:
    wideband, telephone = await heard_by(16000)
    assert telephone.prompts == []
    [prompt] = wideband.prompts
    assert prompt is not None
    assert prompt.startswith("book visit, Maple Grove, Maple Grove Animal Hospital,")
    assert "Trupanion" in prompt

    wideband, telephone = await heard_by(8000)
    assert wideband.prompts == []
    assert telephone.prompts == [prompt]


@pytest.mark.parametrize(
    ("decoded", "kept"),
    [
        (
            "Can I speak to a real human? Can I speak to a real human? Can I speak to a",
            "Can I speak to a real human?",
        ),
        ("Operator. Operator.", "Operator."),
        ("No, no. I said Tuesday.", "No, no. I said Tuesday."),
        ("It's $3.50, is it? It's $3.50.", "It's $3.50, is it? It's $3.50."),
    ],
)
def test_a_prompted_decode_s_repeats_are_dropped(decoded: str, kept: str) -> None:
    assert drop_repeats(decoded) == kept


def test_the_agents_vocabulary_comes_first() -> None:
    prompt = build_prompt(
        agent_vocabulary=["Nguyen", "Invisalign"],
        persona="You are Maya at Acme Dental.",
        vocabulary=["Acme Dental", "nguyen"],
    )
    assert prompt is not None and prompt.startswith("Nguyen, Invisalign, Maya")
    assert prompt.count("guyen") == 1
