"""The default agent end to end: a caller made of Piper-synthesised questions talks in real time
to ``voxline serve`` and gets a greeting, its words back, grounded answers, and barge-in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from tests.support.caller import Caller, Received
from tests.support.examples import ACME_DENTAL
from tests.support.fake_llm import FakeLLM, Reply, ToolCall
from tests.support.fake_llm import Received as LlmRequest
from tests.support.kb_server import PASSAGE_A, TOKEN, KbServer
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from voxline.bench.load import Clip, run_caller
from voxline.bench.speech import synthesize
from voxline.eval.wer import word_errors

pytestmark = pytest.mark.e2e

GREETING = "Thanks for calling Acme Dental."
RATE = 24000


@pytest.fixture(scope="module")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_server(
        tmp_path_factory.mktemp("agent"),
        env=OPEN_LIMITS,
        agent="default",
        args=("--knowledge", str(ACME_DENTAL)),
    ) as server:
        yield server


def _finals(caller: Caller | Received, role: str) -> list[str]:
    got = caller.got if isinstance(caller, Caller) else caller
    return [
        event["text"]
        for _, event in got.events
        if event["event"] == "transcript" and event["role"] == role and event["final"]
    ]


def _replies(count: int) -> Callable[[Received], bool]:
    """Until the agent has finished ``count`` replies (the greeting counts)."""
    return lambda got: len(_finals(got, "assistant")) >= count


async def _open(server: RunningServer, **configure: object) -> Caller:
    key = server.create_key()
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{key}"])
    await caller.send_control({"type": "configure", "greeting": GREETING, **configure})
    return caller


async def test_greeting_question_grounded_answer_and_barge_in(
    agent_server: RunningServer,
) -> None:
    question = "What time do you open tomorrow?"
    caller = await _open(agent_server, metrics=True)
    await caller.silence_until(_replies(1))  # the greeting plays
    assert _finals(caller, "assistant") == [GREETING]
    greeting_audio = caller.got.audio_bytes() // 2
    assert 0.8 * RATE < greeting_audio < 3.0 * RATE

    await caller.stream(synthesize(question, RATE))
    await caller.silence_until(_replies(2))
    [heard] = _finals(caller, "user")
    wer = word_errors(question, heard).rate
    print(f"caller WER {wer:.2%}: {heard!r}")
    assert wer <= 0.2
    answer = _finals(caller, "assistant")[-1]
    assert "8 in the morning" in answer  # from the knowledge file's opening hours
    turn = caller.got.first("turn_begin")
    assert turn["turn"] == 1 and turn["since_caller_end_ms"] > 0
    metrics = caller.got.first("metrics")
    assert metrics["first_audio_ms"] >= metrics["transcribed_ms"]

    # A long answer, interrupted: the agent stops and says truthfully what was heard.
    await caller.stream(synthesize("Which insurance plans do you accept?", RATE))
    await caller.silence_until(lambda got: got.names().count("turn_begin") == 2)
    await caller.silence(0.8)  # a little of the answer is heard
    before = len(caller.got.names())
    await caller.stream(synthesize("Sorry, one more thing.", RATE))
    await caller.silence_until(lambda got: "assistant_interrupted" in got.names()[before:])
    names = caller.got.names()[before:]
    assert "flush" in names
    interrupted = caller.got.events[before + names.index("assistant_interrupted")][1]
    reply = interrupted["reply"]
    assert reply and "We accept most PPO dental plans".startswith(reply[:20])
    assert len(reply) < len("We accept most PPO dental plans, including Delta Dental, Cigna")
    await caller.close()


async def test_a_cough_does_not_interrupt_the_agent(agent_server: RunningServer) -> None:
    caller = await _open(agent_server)
    await caller.silence_until(lambda got: got.audio_bytes() > 0.3 * RATE * 2)
    rng = np.random.default_rng(7)
    cough = (rng.standard_normal(int(0.25 * RATE)) * 6000).astype(np.int16)
    await caller.stream(cough)
    await caller.silence_until(_replies(1))
    await caller.silence(1.0)
    await caller.close()
    assert "flush" not in caller.got.names()
    assert _finals(caller, "assistant") == [GREETING]
    assert _finals(caller, "user") == []


def _rumbles() -> list[npt.NDArray[np.int16]]:
    """Noise below 1 kHz under a Hann window (0.3 s at 0.9 of full scale): a thump, a door,
    the body of a cough. Silero takes it for speech enough to cut the agent off only at
    some alignments with its 32 ms windows, so the same rumble comes at seven offsets 5 ms
    apart, one after another until one cuts the agent off."""
    noise = np.random.default_rng(2).standard_normal(int(0.3 * RATE))
    noise = soxr.resample(soxr.resample(noise, RATE, 2000), 2000, RATE)[: len(noise)]
    shaped = (noise * np.hanning(len(noise)) / np.abs(noise).max() * 0.9 * 32767).astype(np.int16)
    return [
        np.concatenate([np.zeros(ms * RATE // 1000, np.int16), shaped]) for ms in range(0, 35, 5)
    ]


INSURANCE_END = "just bring your insurance card to your visit."


async def _sound_during_a_long_answer(
    server: RunningServer, sounds: list[npt.NDArray[np.int16]]
) -> tuple[Caller, list[str]]:
    """A caller asks about insurance, makes ``sounds`` from a second into the answer, one
    every 0.8 s until one cuts the agent off, and listens on until the agent's next reply
    is over; the names of the events from the sounds on."""
    caller = await _open(server)
    await caller.silence_until(_replies(1))
    await caller.stream(synthesize("Which insurance plans do you accept?", RATE))
    await caller.silence_until(lambda got: "turn_begin" in got.names())
    await caller.silence(1.0)
    before = len(caller.got.events)
    for sound in sounds:
        await caller.stream(sound)
        await caller.silence(0.5)
        if "flush" in caller.got.names()[before:]:
            break
    assert "flush" in caller.got.names()[before:], "no sound cut the agent off"
    await caller.silence_until(lambda got: len(_finals(got, "assistant")) >= 2, timeout=20)
    await caller.close()
    return caller, caller.got.names()[before:]


async def test_a_low_rumble_that_cuts_the_answer_off_is_followed_by_the_rest_of_it(
    agent_server: RunningServer,
) -> None:
    caller, names = await _sound_during_a_long_answer(agent_server, _rumbles())
    # Cut off, then resumed: a `turn` that answers no caller turn, with the rest.
    assert names.index("flush") < names.index("turn") and "turn_begin" not in names
    interrupted = caller.got.first("assistant_interrupted")["reply"]
    [resumed] = _finals(caller, "assistant")[1:]
    assert resumed.endswith(INSURANCE_END)
    assert len(resumed) > len(INSURANCE_ANSWER) - len(interrupted)  # from its sentence on
    assert len(_finals(caller, "user")) == 1  # the question: the rumble is no turn
    flushed = caller.got.when("flush")
    assert caller.got.audio_bytes(after=flushed + 0.2) > 3 * RATE * 2  # seconds of it heard


async def test_a_caller_who_says_wait_stop_is_answered_not_resumed(
    agent_server: RunningServer, interruption: npt.NDArray[np.int16]
) -> None:
    caller, names = await _sound_during_a_long_answer(agent_server, [interruption])
    assert names.index("flush") < names.index("turn_begin") < names.index("turn")
    assert "stop" in _finals(caller, "user")[-1].lower()
    assert INSURANCE_END not in _finals(caller, "assistant")[-1]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, FakeLLM]]:
    with (
        FakeLLM() as llm,
        run_server(
            tmp_path_factory.mktemp("llm-agent"),
            env=OPEN_LIMITS,
            agent="default",
            args=(
                "--knowledge",
                str(ACME_DENTAL),
                "--llm-url",
                llm.url,
                "--llm-model",
                "test-model",
            ),
        ) as server,
    ):
        yield server, llm


async def test_the_llm_brain_streams_into_speech(
    llm_server: tuple[RunningServer, FakeLLM],
) -> None:
    server, llm = llm_server
    llm.script(Reply(text="We open at eight tomorrow. See you then!"))
    caller = await _open(server, persona="You are Maya, the receptionist at Acme Dental.")
    await caller.silence_until(_replies(1))
    question = "What time do you open tomorrow?"
    await caller.stream(synthesize(question, RATE))
    await caller.silence_until(_replies(2))
    await caller.close()
    assert word_errors(question, _finals(caller, "user")[0]).rate <= 0.2
    assert _finals(caller, "assistant")[-1] == "We open at eight tomorrow. See you then!"
    [request] = llm.requests
    messages = request.body["messages"]
    assert messages[0]["role"] == "system" and "Maya" in messages[0]["content"]
    assert "8 in the morning" in messages[0]["content"]  # knowledge as context
    assert messages[-1]["role"] == "user" and "open" in messages[-1]["content"].lower()
    assert request.body["stream"] is True


async def test_tools_client_loop_and_call_control_through_the_llm(
    llm_server: tuple[RunningServer, FakeLLM],
) -> None:
    """The brain calls a client tool (tool_call -> tool_result), answers with its output,
    then ends the call: ``end_call`` is sent and the session ends once the goodbye is heard."""
    server, llm = llm_server
    llm.reset()
    llm.script(
        Reply(tool_calls=[ToolCall("order_status", {"order": "A17"})]),
        Reply(text="Your order A17 ships tomorrow."),
        Reply(text="Goodbye!", tool_calls=[ToolCall("end_call", {"reason": "done"})]),
    )
    tool = {
        "name": "order_status",
        "description": "Look up an order",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}},
    }
    caller = await _open(server, tools=[tool])
    assert (await caller.wait_for("configured"))["tools"] == 1
    await caller.silence_until(_replies(1))
    await caller.send_control({"type": "input_text", "text": "Where is my order A17?"})
    call = await caller.wait_for("tool_call")
    assert (call["name"], call["arguments"]) == ("order_status", {"order": "A17"})
    await caller.send_control(
        {"type": "tool_result", "call_id": call["call_id"], "output": {"status": "ships tomorrow"}}
    )
    await caller.silence_until(_replies(2))
    assert _finals(caller, "assistant")[-1] == "Your order A17 ships tomorrow."
    second = llm.requests[1].body["messages"]
    assert second[-1]["role"] == "tool" and "ships tomorrow" in second[-1]["content"]

    await caller.send_control({"type": "input_text", "text": "Thanks, bye."})
    await caller.silence_until(lambda got: got.close_code is not None, timeout=20)
    names = caller.got.names()
    assert names.index("end_call") < names.index("session_end")
    assert caller.got.first("end_call")["reason"] == "done"
    assert caller.got.close_code == 1000


async def test_kb_endpoint_answers_each_caller_turn(agent_server: RunningServer) -> None:
    """Each caller turn POSTs to the kb_endpoint with the bearer token; its passage grounds
    the answer."""
    with KbServer() as kb:
        caller = await _open(
            agent_server, kb_endpoint=kb.url("auth"), kb_token=TOKEN, greeting="Hello."
        )
        assert (await caller.wait_for("configured"))["kb"] is True
        await caller.silence_until(_replies(1))
        await caller.send_control({"type": "input_text", "text": "When are you open?"})
        await caller.silence_until(_replies(2))
        await caller.close()
    assert _finals(caller, "assistant")[-1] == PASSAGE_A
    [(headers, body)] = kb.received
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert body["query"] == "When are you open?"


INSURANCE_ANSWER = (
    "We accept most PPO dental plans, including Delta Dental, Cigna, Aetna, MetLife and "
    "Guardian. We are out of network for HMO plans, but we can file the claim for you."
)


def _llm_answers(received: LlmRequest) -> Reply:
    """A stand-in model: quotes the opening hours from the knowledge it was given, gives a
    long answer about insurance (to be interrupted), and a short one otherwise."""
    question = received.messages[-1]["content"].lower()
    if "insurance" in question:
        return Reply(text=INSURANCE_ANSWER)
    if "open" in question:
        context = received.messages[0]["content"]
        hours = next(line for line in re.split(r"(?<=\.)\s+", context) if "8 in the" in line)
        return Reply(text=hours)
    return Reply(text="Of course, go ahead.")


async def test_the_llm_brain_answers_from_knowledge_and_is_cut_off_truthfully(
    llm_server: tuple[RunningServer, FakeLLM],
) -> None:
    server, llm = llm_server
    llm.reset()
    llm.respond = _llm_answers
    caller = await _open(server)
    await caller.silence_until(_replies(1))
    question = "What time do you open tomorrow?"
    await caller.stream(synthesize(question, RATE))
    await caller.silence_until(_replies(2))
    assert word_errors(question, _finals(caller, "user")[0]).rate <= 0.2
    assert "8 in the morning" in _finals(caller, "assistant")[-1]

    await caller.stream(synthesize("Which insurance plans do you accept?", RATE))
    await caller.silence_until(lambda got: got.names().count("turn_begin") == 2)
    await caller.silence(0.8)
    before = len(caller.got.names())
    await caller.stream(synthesize("Sorry, one more thing.", RATE))
    await caller.silence_until(_replies(3))
    await caller.close()
    names = caller.got.names()[before:]
    assert "flush" in names
    reply = caller.got.events[before + names.index("assistant_interrupted")][1]["reply"]
    assert reply and INSURANCE_ANSWER.startswith(reply) and len(reply) < len(INSURANCE_ANSWER)
    # The model is told only what the caller heard of the answer it gave.
    last = llm.requests[-1].messages
    assert last[-1] == {"role": "user", "content": _finals(caller, "user")[-1]}
    assert last[-2] == {"role": "assistant", "content": reply}


async def test_the_bench_caller_reports_what_the_agent_heard(agent_server: RunningServer) -> None:
    text = "What are your opening hours?"
    result = await run_caller(
        agent_server.http,
        agent_server.create_key(),
        [Clip.of(synthesize(text, RATE), text)],
        rate=RATE,
        duration=4.0,
    )
    assert result.error is None and result.replies >= 1
    assert result.heard and all(question == text for question, _ in result.heard)
    assert all(word_errors(text, heard).rate <= 0.2 for _, heard in result.heard)
