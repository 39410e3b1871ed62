"""The chat completions brain against a real HTTP server streaming the way OpenAI's does."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.support.fake_llm import FakeLLM, Received, Reply, ToolCall
from voxline.engines.brain import BrainOutput, BrainRequest, Message, TextDelta
from voxline.engines.llm import (
    APOLOGY,
    DEFAULT_PERSONA,
    MAX_KNOWLEDGE_CHARS,
    ChatCompletionsBrain,
    SseDecoder,
)
from voxline.protocol.call_control import CallControl, HangUp, SendDigits, Transfer
from voxline.protocol.client_frames import MAX_TOOL_OUTPUT_BYTES, Tool

KEY = "sk-test-0123456789"
ORDER_TOOL = Tool(
    "lookup_order",
    "Look up an order by its id.",
    {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
)


class Runner:
    """A ToolRunner that records its calls."""

    def __init__(self, output: str = '{"status": "shipped"}') -> None:
        self.output = output
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, name: str, arguments: dict[str, Any]) -> str:
        self.calls.append((name, arguments))
        return self.output


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def llm(llm_server: FakeLLM) -> FakeLLM:
    llm_server.reset()
    return llm_server


@pytest.fixture
async def brain(llm: FakeLLM) -> AsyncIterator[ChatCompletionsBrain]:
    # Plain HTTP on loopback: skipping certificate loading makes each client cheap.
    async with httpx.AsyncClient(verify=False) as client:
        yield ChatCompletionsBrain(
            llm.url, model="test-model", api_key=KEY, client=client, timeout=5
        )


def ask(text: str = "When do you open?", **fields: Any) -> BrainRequest:
    return BrainRequest(persona=fields.pop("persona", None), history=(), user_text=text, **fields)


async def collect(
    brain: ChatCompletionsBrain, request: BrainRequest, runner: Runner | None = None
) -> list[BrainOutput]:
    return [output async for output in brain.respond(request, runner or Runner())]


def spoken(outputs: Sequence[BrainOutput]) -> str:
    return "".join(output.text for output in outputs if isinstance(output, TextDelta))


async def wait_set(event: threading.Event, timeout: float = 3.0) -> bool:
    return await asyncio.to_thread(event.wait, timeout)


# ---- streaming text ----------------------------------------------------------------------


async def test_text_arrives_as_deltas_before_the_stream_ends(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    resume = threading.Event()
    text = "We open at nine. Is there anything else?"
    llm.script(Reply(text=text, pause_after=1, resume=resume))
    deltas: list[str] = []
    async for output in brain.respond(ask(), Runner()):
        assert isinstance(output, TextDelta)
        if not deltas:
            # The server holds the rest of the reply until this first piece is through.
            assert not llm.requests[0].finished.is_set()
            resume.set()
        deltas.append(output.text)
    assert "".join(deltas) == text
    assert len(deltas) > 3
    assert llm.requests[0].finished.is_set()


async def test_request_carries_persona_knowledge_history_and_the_turn(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(Reply(text="Nine to five."))
    request = BrainRequest(
        persona="You are Ada, the receptionist of Bright Dental.",
        history=(Message("user", "Hi there"), Message("assistant", "Hello! How can I help?")),
        user_text="When do you open?",
        knowledge=("Opening hours: 9am to 5pm, Monday to Friday.", "Parking is free."),
        tools=(ORDER_TOOL,),
    )
    assert spoken(await collect(brain, request)) == "Nine to five."

    (received,) = llm.requests
    body = received.body
    assert body["model"] == "test-model"
    assert body["stream"] is True
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 200
    system, *rest = received.messages
    assert system["role"] == "system"
    assert system["content"].startswith("You are Ada, the receptionist of Bright Dental.")
    assert "spoken aloud" in system["content"]
    assert "Use this information" in system["content"]
    assert "Opening hours: 9am to 5pm" in system["content"]
    assert "Parking is free." in system["content"]
    assert rest == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "When do you open?"},
    ]
    assert received.function_names == ["transfer_to_human", "end_call", "send_dtmf", "lookup_order"]
    order = received.tools[-1]
    assert order == {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": ORDER_TOOL.description,
            "parameters": ORDER_TOOL.parameters,
        },
    }
    by_name = {tool["function"]["name"]: tool["function"] for tool in received.tools}
    assert by_name["end_call"]["parameters"]["required"] == ["reason"]
    assert by_name["send_dtmf"]["parameters"]["required"] == ["digits"]
    assert set(by_name["transfer_to_human"]["parameters"]["properties"]) == {
        "destination",
        "reason",
        "summary",
    }
    assert "tool_choice" not in body


async def test_default_persona_digits_and_bounded_knowledge(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(Reply(text="Got it."))
    request = BrainRequest(
        persona=None,
        history=(),
        digits="12#",
        knowledge=("x" * 5000, "y" * 5000, "z" * 5000),
        tools=(Tool("end_call", "a client tool shadowing call control", {}),),
    )
    await collect(brain, request)
    (received,) = llm.requests
    system = received.messages[0]["content"]
    assert system.startswith(DEFAULT_PERSONA)
    assert len(system) < MAX_KNOWLEDGE_CHARS + 2000
    assert "x" * 5000 in system and "z" not in system
    assert received.messages[-1] == {
        "role": "user",
        "content": "[The caller pressed 1 2 # on the keypad.]",
    }
    assert received.function_names == ["transfer_to_human", "end_call", "send_dtmf"]


async def test_bearer_key_is_sent_and_omitted_without_one(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(Reply(text="One."), Reply(text="Two."))
    await collect(brain, ask())
    keyless = ChatCompletionsBrain(f"{llm.url}/chat/completions", model="m")
    try:
        assert spoken(await collect(keyless, ask())) == "Two."
    finally:
        await keyless.aclose()
    assert llm.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in llm.requests[1].headers


# ---- tools and call control --------------------------------------------------------------


async def test_client_tool_result_goes_back_to_the_model(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(
        Reply(
            text="Let me check.",
            tool_calls=[ToolCall("lookup_order", {"order_id": "A-17"}, id="call_abc")],
        ),
        Reply(text="Your order ships tomorrow."),
    )
    runner = Runner()
    outputs = await collect(brain, ask("Where is order A-17?", tools=(ORDER_TOOL,)), runner)

    assert runner.calls == [("lookup_order", {"order_id": "A-17"})]
    assert spoken(outputs) == "Let me check.Your order ships tomorrow."
    first, second = llm.requests
    assert second.messages[: len(first.messages)] == first.messages
    assistant, result = second.messages[len(first.messages) :]
    assert assistant == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"order_id": "A-17"}'},
            }
        ],
    }
    assert result == {"role": "tool", "tool_call_id": "call_abc", "content": runner.output}


async def test_parallel_tool_calls_all_run_and_answer_in_order(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(
        Reply(
            tool_calls=[
                ToolCall("lookup_order", {"order_id": "1"}, id="c1"),
                ToolCall("lookup_order", {"order_id": "2"}, id="c2"),
            ]
        ),
        Reply(text="Both ship today."),
    )
    runner = Runner()
    outputs = await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    assert spoken(outputs) == "Both ship today."
    assert sorted(arguments["order_id"] for _, arguments in runner.calls) == ["1", "2"]
    second = llm.requests[1].messages
    assert second[-3]["content"] is None
    assert [call["id"] for call in second[-3]["tool_calls"]] == ["c1", "c2"]
    assert [(m["role"], m["tool_call_id"]) for m in second[-2:]] == [("tool", "c1"), ("tool", "c2")]


async def test_bad_tool_arguments_run_with_none_and_the_model_is_told(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(
        Reply(tool_calls=[ToolCall("lookup_order", '{"order_id": "A-', id="c1")]),
        Reply(text="Which order was that?"),
    )
    runner = Runner()
    outputs = await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    assert runner.calls == [("lookup_order", {})]
    assert spoken(outputs) == "Which order was that?"
    assistant, result = llm.requests[1].messages[-2:]
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
    assert "not a valid JSON object" in result["content"]
    assert result["content"].endswith(runner.output)


async def test_unknown_tool_and_long_output(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    llm.script(
        Reply(
            tool_calls=[
                ToolCall("lookup_order", {"order_id": "1"}, id="c1"),
                ToolCall("delete_everything", {}, id="c2"),
            ]
        ),
        Reply(text="Done."),
    )
    runner = Runner("é" * MAX_TOOL_OUTPUT_BYTES)
    await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    assert [name for name, _ in runner.calls] == ["lookup_order"]
    order, unknown = llm.requests[1].messages[-2:]
    assert len(order["content"].encode()) <= MAX_TOOL_OUTPUT_BYTES
    assert json.loads(unknown["content"]) == {"error": "no tool named 'delete_everything'"}


@pytest.mark.parametrize(
    ("call", "action"),
    [
        (
            ToolCall(
                "transfer_to_human",
                {"destination": "billing", "reason": "refund", "summary": "Wants a refund."},
            ),
            Transfer(destination="billing", reason="refund", summary="Wants a refund."),
        ),
        (ToolCall("transfer_to_human", {}), Transfer()),
        (
            ToolCall("end_call", {"reason": "caller said goodbye"}),
            HangUp("caller said goodbye"),
        ),
        (ToolCall("end_call", "not json"), HangUp("completed")),
        (ToolCall("send_dtmf", {"digits": "1, 2 #"}), SendDigits("12#")),
    ],
)
async def test_call_control_becomes_an_action_after_the_text(
    llm: FakeLLM, brain: ChatCompletionsBrain, call: ToolCall, action: CallControl
) -> None:
    llm.script(Reply(text="One moment.", tool_calls=[call]))
    runner = Runner()
    outputs = await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    assert outputs[-1] == action
    assert spoken(outputs) == "One moment."
    assert all(isinstance(output, TextDelta) for output in outputs[:-1])
    assert runner.calls == []
    assert len(llm.requests) == 1  # the turn ends with the action


async def test_tools_run_before_the_call_ends(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    llm.script(
        Reply(
            text="Goodbye!",
            tool_calls=[
                ToolCall("end_call", {"reason": "done"}),
                ToolCall("lookup_order", {"order_id": "9"}),
            ],
        )
    )
    runner = Runner()
    outputs = await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    assert runner.calls == [("lookup_order", {"order_id": "9"})]
    assert outputs[-1] == HangUp("done")
    assert len(llm.requests) == 1


async def test_bad_dtmf_digits_go_back_to_the_model(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(
        Reply(tool_calls=[ToolCall("send_dtmf", {"digits": "one"}, id="d1")]),
        Reply(tool_calls=[ToolCall("send_dtmf", {"digits": "1"}, id="d2")]),
    )
    outputs = await collect(brain, ask())
    assert outputs == [SendDigits("1")]
    result = llm.requests[1].messages[-1]
    assert result["tool_call_id"] == "d1"
    assert "error" in json.loads(result["content"])
    assert len(llm.requests) == 2


async def test_tool_rounds_are_bounded(llm: FakeLLM) -> None:
    llm.default = Reply(tool_calls=[ToolCall("lookup_order", {"order_id": "1"})])
    brain = ChatCompletionsBrain(llm.url, model="m", max_tool_rounds=2)
    runner = Runner()
    try:
        outputs = await collect(brain, ask(tools=(ORDER_TOOL,)), runner)
    finally:
        await brain.aclose()
    assert outputs == []
    assert len(runner.calls) == 2
    assert len(llm.requests) == 3
    assert [r.body.get("tool_choice") for r in llm.requests] == [None, None, "none"]


# ---- the wire ------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [choice]}
    return json.dumps(chunk, ensure_ascii=False)


async def test_sse_edge_cases_over_the_network(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    caf = f"data: {_chunk({'content': ' café'})}\r\n\r\n".encode()
    cut = caf.index("é".encode()) + 1  # inside the two bytes of "é"
    tool = _chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "end_call"}}]})
    args = _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"reason":"bye"}'}}]})
    llm.script(
        Reply(
            raw=[
                b": keep-alive\n\n",
                f"data: {_chunk({'role': 'assistant', 'content': ''})}\n\n".encode(),
                f"data:{_chunk({'content': 'Bon'})}\n".encode()[:20],
                f"data:{_chunk({'content': 'Bon'})}\n".encode()[20:] + b"\n: ping\n\n",
                f"data: {_chunk({'content': 'jour'})}\r".encode(),
                b"\n\r\n",
                caf[:cut],
                caf[cut:],
                b'data: {"id":"c","object":"chat.completion.chunk","choices":[]}\n\n',
                f"data: {tool}\n\ndata: {args}\n\n".encode(),
                f"data: {_chunk({}, 'tool_calls')}\r\rdata: [DONE]\r\r".encode(),
            ]
        )
    )
    outputs = await collect(brain, ask())
    assert spoken(outputs) == "Bonjour café"
    assert [o.text for o in outputs if isinstance(o, TextDelta)] == ["Bon", "jour", " café"]
    assert outputs[-1] == HangUp("bye")


def test_sse_decoder_byte_by_byte() -> None:
    stream = (
        b": comment\r\n"
        b"event: message\r\nid: 1\r\ndata: first\r\ndata:  two lines\r\n\r\n"
        b"data: \xc3\xa9t\xc3\xa9\r\r"
        b"retry: 10\n\n"
        b"data: [DONE]\n\n"
        b"data: no blank line at the end"
    )
    decoder = SseDecoder()
    events: list[str] = []
    for index in range(len(stream)):
        events += decoder.feed(stream[index : index + 1])
    events += decoder.close()
    assert events == ["first\n two lines", "été", "[DONE]", "no blank line at the end"]


async def test_a_server_that_ignores_stream(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    llm.script(
        Reply(text="All at once.", stream=False),
        Reply(tool_calls=[ToolCall("end_call", {"reason": "done"})], stream=False),
    )
    assert spoken(await collect(brain, ask())) == "All at once."
    assert await collect(brain, ask()) == [HangUp("done")]


async def test_fake_answers_non_streamed_requests(llm: FakeLLM) -> None:
    llm.script(Reply(text="Hello.", tool_calls=[ToolCall("end_call", {"reason": "x"}, id="c9")]))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{llm.url}/chat/completions", json={"model": "m", "messages": [], "stream": False}
        )
    answer = response.json()
    assert answer["object"] == "chat.completion"
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Hello."
    assert choice["message"]["tool_calls"][0]["id"] == "c9"


# ---- failures ------------------------------------------------------------------------------


async def test_http_error_is_one_apology_and_the_key_is_not_logged(
    llm: FakeLLM, brain: ChatCompletionsBrain, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script(Reply(status=500))
    with caplog.at_level(logging.WARNING, logger="voxline.engines.llm"):
        outputs = await collect(brain, ask())
    assert outputs == [TextDelta(APOLOGY)]
    assert "500" in caplog.text
    assert KEY not in caplog.text


async def test_wrong_key_is_one_apology(llm: FakeLLM) -> None:
    llm.api_key = "sk-the-right-one"
    brain = ChatCompletionsBrain(llm.url, model="m", api_key="sk-the-wrong-one")
    try:
        assert await collect(brain, ask()) == [TextDelta(APOLOGY)]
    finally:
        await brain.aclose()


async def test_connection_refused_is_one_apology() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    brain = ChatCompletionsBrain(f"http://127.0.0.1:{port}/v1", model="m")
    try:
        assert await collect(brain, ask()) == [TextDelta(APOLOGY)]
    finally:
        await brain.aclose()


async def test_stall_past_the_timeout_is_one_apology_after_the_text(llm: FakeLLM) -> None:
    llm.script(Reply(text="Let me see", end="stall"))
    brain = ChatCompletionsBrain(llm.url, model="m", timeout=0.3)
    try:
        outputs = await asyncio.wait_for(collect(brain, ask()), 5)
    finally:
        await brain.aclose()
    assert spoken(outputs) == f"Let me see {APOLOGY}"
    assert outputs[-1] == TextDelta(f" {APOLOGY}")
    assert await wait_set(llm.requests[0].disconnected)


async def test_broken_stream_is_one_apology(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    llm.script(Reply(text="Our hours are", end="drop"))
    outputs = await collect(brain, ask())
    assert spoken(outputs) == f"Our hours are {APOLOGY}"
    assert sum(APOLOGY in o.text for o in outputs if isinstance(o, TextDelta)) == 1


async def test_error_event_in_the_stream_is_one_apology(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(Reply(raw=[b'data: {"error": {"message": "overloaded"}}\n\n']))
    assert await collect(brain, ask()) == [TextDelta(APOLOGY)]


async def test_failure_after_a_tool_round_is_one_apology(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    llm.script(Reply(tool_calls=[ToolCall("lookup_order", {"order_id": "1"})]), Reply(status=503))
    outputs = await collect(brain, ask(tools=(ORDER_TOOL,)))
    assert outputs == [TextDelta(APOLOGY)]


# ---- barge-in --------------------------------------------------------------------------------


async def test_cancelling_closes_the_stream(llm: FakeLLM, brain: ChatCompletionsBrain) -> None:
    resume = threading.Event()  # never set: the server holds the rest of the reply
    llm.script(
        Reply(text="A long answer that the caller cuts short.", pause_after=1, resume=resume)
    )
    first = asyncio.Event()

    async def speak() -> None:
        async for _ in brain.respond(ask(), Runner()):
            first.set()

    task = asyncio.create_task(speak())
    await asyncio.wait_for(first.wait(), 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await wait_set(llm.requests[0].disconnected, 1.0)
    assert not llm.requests[0].finished.is_set()


async def test_closing_the_reply_closes_the_stream(
    llm: FakeLLM, brain: ChatCompletionsBrain
) -> None:
    resume = threading.Event()
    llm.script(
        Reply(text="A long answer that the caller cuts short.", pause_after=1, resume=resume)
    )
    replies = brain.respond(ask(), Runner())
    assert isinstance(await anext(replies), TextDelta)
    await replies.aclose()  # type: ignore[attr-defined]
    assert await wait_set(llm.requests[0].disconnected, 1.0)


async def test_a_shared_client_is_left_open(llm: FakeLLM) -> None:
    llm.script(Reply(text="Hi."))
    async with httpx.AsyncClient() as client:
        brain = ChatCompletionsBrain(llm.url, model="m", client=client)
        assert spoken(await collect(brain, ask())) == "Hi."
        await brain.aclose()
        assert not client.is_closed


def test_received_records_the_request(llm: FakeLLM) -> None:
    llm.script(Reply(text="ok"))
    response = httpx.post(
        f"{llm.url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"X-Test": "yes"},
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    received: Received = llm.requests[0]
    assert received.messages == [{"role": "user", "content": "hi"}]
    assert received.headers["x-test"] == "yes"
