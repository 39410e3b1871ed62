"""A brain on any OpenAI-compatible chat completions endpoint, streamed token by token.

Reply text is yielded the moment it arrives, so that the first sentence can be spoken
while the model is still writing the rest. Call control (transfer, hang up, keypad) is
offered to the model as functions and comes back as typed call control
(:mod:`voxline.protocol.call_control`); the session's own tools are run through the
:class:`ToolRunner` and their results fed back to the model.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from voxline.engines.brain import BrainOutput, BrainRequest, Message, TextDelta, ToolRunner
from voxline.protocol.call_control import CallControl, HangUp, SendDigits, Transfer
from voxline.protocol.client_frames import DTMF_DIGITS, MAX_TOOL_OUTPUT_BYTES, Tool, truncate_utf8

log = logging.getLogger(__name__)

APOLOGY: Final = "Sorry, I'm having trouble right now. Could you say that again?"
DEFAULT_PERSONA: Final = "You are a friendly, capable phone agent."
SPOKEN_GUIDANCE: Final = (
    "You are on a live phone call and everything you write is spoken aloud. Answer in one "
    "to three short, natural sentences. Never use markdown, lists, emoji or URLs. "
    "Use transfer_to_human when the caller asks for a person or you cannot help, end_call "
    "once the conversation is over and you have said goodbye, and send_dtmf to press keys "
    "on an automated phone menu."
)
KNOWLEDGE_INTRO: Final = (
    "Use this information to answer when it is relevant. If it does not cover the "
    "question, say you are not sure rather than guessing."
)
MAX_KNOWLEDGE_CHARS: Final = 6000

_STRING: Final = {"type": "string"}
CALL_CONTROL_FUNCTIONS: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "transfer_to_human",
        "description": "Transfer the call to a human. Say a short line first, then call this.",
        "parameters": {
            "type": "object",
            "properties": {
                "destination": {**_STRING, "description": "Team or number, if known."},
                "reason": {**_STRING, "description": "Why the caller needs a human."},
                "summary": {**_STRING, "description": "A brief summary for the human."},
            },
        },
    },
    {
        "name": "end_call",
        "description": "Hang up. Say goodbye first, then call this.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {**_STRING, "description": "Why the call is ending."}},
            "required": ["reason"],
        },
    },
    {
        "name": "send_dtmf",
        "description": "Press keys on the phone keypad, e.g. to navigate a phone menu.",
        "parameters": {
            "type": "object",
            "properties": {"digits": {**_STRING, "pattern": "^[0-9*#A-D]+$"}},
            "required": ["digits"],
        },
    },
)
CALL_CONTROL: Final = frozenset(function["name"] for function in CALL_CONTROL_FUNCTIONS)
_TRANSFER_KEYS: Final = ("destination", "reason", "summary")
_DTMF_SEPARATORS: Final = re.compile(r"[\s,\-]")
_LINE_END: Final = re.compile(r"\r\n|\r|\n")


class SseDecoder:
    """Incremental ``text/event-stream`` parsing: feed network chunks as they come, get the
    ``data`` of every event completed so far. Lines may end in CRLF, LF or CR and may be
    split anywhere, even inside a UTF-8 character; comments (keep-alives) are skipped."""

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += self._text.decode(chunk)
        return self._drain(final=False)

    def close(self) -> list[str]:
        """The events left at the end of the stream, lenient about a missing blank line."""
        self._buffer += self._text.decode(b"", final=True)
        events = self._drain(final=True)
        if self._buffer:
            events += self._line(self._buffer)
            self._buffer = ""
        if self._data:
            events.append("\n".join(self._data))
            self._data = []
        return events

    def _drain(self, *, final: bool) -> list[str]:
        events: list[str] = []
        while match := _LINE_END.search(self._buffer):
            # A CR at the very end may be the first half of a CRLF: wait for more.
            if match.group() == "\r" and match.end() == len(self._buffer) and not final:
                break
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            events += self._line(line)
        return events

    def _line(self, line: str) -> list[str]:
        if not line:
            data, self._data = self._data, []
            return ["\n".join(data)] if data else []
        name, _, value = line.partition(":")
        if name == "data":
            self._data.append(value.removeprefix(" "))
        return []


class _StreamError(Exception):
    """The endpoint answered, but not with a usable completion."""


@dataclass(slots=True)
class _ToolCall:
    id: str
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Completion:
    """One completion as it streams in: text so far, tool calls, how it finished."""

    id_prefix: str = "call_"  # for tool calls that come without an id
    text: list[str] = field(default_factory=list)
    calls: dict[int, _ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None
    done: bool = False

    def apply(self, chunk: Any, *, key: str = "delta") -> str:
        """Takes in one chunk (or, with ``key="message"``, a whole non-streamed answer) and
        returns its new text."""
        if not isinstance(chunk, dict):
            raise _StreamError("a chunk that is not a JSON object")
        if "error" in chunk:
            raise _StreamError(f"error event: {str(chunk['error'])[:200]}")
        choices = chunk.get("choices")
        if not choices:  # e.g. a usage-only chunk
            return ""
        choice = choices[0] if isinstance(choices, list) else None
        if not isinstance(choice, dict) or not isinstance(delta := choice.get(key), dict):
            raise _StreamError("a chunk without a choice")
        if isinstance(finish := choice.get("finish_reason"), str):
            self.finish_reason = finish
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            for position, piece in enumerate(tool_calls):
                if isinstance(piece, dict):
                    self._add_call_piece(piece, position if key == "message" else None)
        content = delta.get("content")
        if isinstance(content, str) and content:
            self.text.append(content)
            return content
        return ""

    def _add_call_piece(self, piece: dict[str, Any], position: int | None) -> None:
        index = piece.get("index", position)
        if not isinstance(index, int):  # some servers leave out the index
            new = isinstance(piece.get("id"), str) and all(
                call.id != piece["id"] for call in self.calls.values()
            )
            index = len(self.calls) if new or not self.calls else max(self.calls)
        call = self.calls.setdefault(index, _ToolCall(id=f"{self.id_prefix}{index}"))
        if isinstance(call_id := piece.get("id"), str) and call_id:
            call.id = call_id
        function = piece.get("function")
        if not isinstance(function, dict):
            return
        if isinstance(name := function.get("name"), str) and name and not call.name:
            call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send an object, not JSON text
            arguments = json.dumps(arguments)
        if isinstance(arguments, str):
            call.arguments += arguments


def _parse_arguments(text: str) -> dict[str, Any] | None:
    """The arguments as an object, or None when they are not a JSON object."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _system_prompt(request: BrainRequest) -> str:
    persona = (request.persona or "").strip() or DEFAULT_PERSONA
    parts = [persona, SPOKEN_GUIDANCE]
    passages: list[str] = []
    budget = MAX_KNOWLEDGE_CHARS
    for passage in (text.strip() for text in request.knowledge):
        if not passage or budget <= 0:
            continue
        passages.append(passage[:budget])
        budget -= len(passages[-1])
    if passages:
        parts.append(KNOWLEDGE_INTRO + "\n\n" + "\n\n---\n\n".join(passages))
    return "\n\n".join(parts)


def _user_turn(request: BrainRequest) -> str | None:
    lines = [request.user_text.strip()] if request.user_text and request.user_text.strip() else []
    if request.digits:
        lines.append(f"[The caller pressed {' '.join(request.digits)} on the keypad.]")
    return "\n".join(lines) or None


def build_messages(request: BrainRequest) -> list[dict[str, Any]]:
    """System prompt (persona, spoken-reply guidance, knowledge), history, this turn."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": _system_prompt(request)}]
    messages += [_message(entry) for entry in request.history if entry.content.strip()]
    if (turn := _user_turn(request)) is not None:
        messages.append({"role": "user", "content": turn})
    return messages


def _message(entry: Message) -> dict[str, Any]:
    return {"role": entry.role, "content": entry.content}


def build_functions(tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """The session's tools and call control as function tools. A session tool named like a
    call-control function is left out: call control is the server's to carry out."""
    functions = [dict(function) for function in CALL_CONTROL_FUNCTIONS]
    functions += [
        {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        for tool in tools
        if tool.name not in CALL_CONTROL
    ]
    return [{"type": "function", "function": function} for function in functions]


def _call_control(name: str, arguments: dict[str, Any]) -> tuple[CallControl | None, str]:
    """The action a call-control function asks for (None if unusable), and the result the
    model sees for it."""
    if name == "send_dtmf":
        raw = arguments.get("digits")
        digits = _DTMF_SEPARATORS.sub("", raw).upper() if isinstance(raw, str) else ""
        if not digits or not set(digits) <= DTMF_DIGITS:
            return None, json.dumps({"error": "digits must be one or more of 0-9, *, #, A-D"})
        return SendDigits(digits), json.dumps({"sent": digits})
    if name == "end_call":
        reason = arguments.get("reason")
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else "completed"
        return HangUp(reason), json.dumps({"status": "ending call"})
    spread = {
        key: value.strip()
        for key in _TRANSFER_KEYS
        if isinstance(value := arguments.get(key), str) and value.strip()
    }
    return Transfer(**spread), json.dumps({"status": "transferring"})


async def _run_tool(tools: ToolRunner, name: str, arguments: dict[str, Any]) -> str:
    try:
        output = await tools(name, arguments)
    except Exception:
        log.exception("tool %s failed", name)
        return json.dumps({"error": "tool failed"})
    return truncate_utf8(output, MAX_TOOL_OUTPUT_BYTES)


@dataclass(slots=True)
class _Plan:
    """What one completion's tool calls ask for, and what the model is told of each."""

    calls: list[_ToolCall]
    results: dict[str, str] = field(default_factory=dict)  # by call id
    actions: list[CallControl] = field(default_factory=list)  # carried out at once
    ending: CallControl | None = None  # a transfer or hang-up: the turn ends with it
    runs: list[tuple[_ToolCall, dict[str, Any], str]] = field(default_factory=list)
    needs_reply: bool = False  # the model has results to read

    @classmethod
    def of(cls, completion: _Completion, session_tools: frozenset[str]) -> _Plan:
        plan = cls([completion.calls[index] for index in sorted(completion.calls)])
        for call in plan.calls:
            arguments = _parse_arguments(call.arguments)
            note = ""
            if arguments is None:
                arguments, call.arguments = {}, "{}"
                note = "Your arguments were not a valid JSON object, so none were used.\n"
            if call.name in CALL_CONTROL:
                action, result = _call_control(call.name, arguments)
                plan.results[call.id] = note + result
                if action is None:
                    plan.needs_reply = True
                elif isinstance(action, SendDigits):
                    plan.actions.append(action)
                elif plan.ending is None:
                    plan.ending = action
            elif call.name in session_tools:
                plan.runs.append((call, arguments, note))
                plan.needs_reply = True
            else:
                plan.results[call.id] = json.dumps({"error": f"no tool named {call.name!r}"})
                plan.needs_reply = True
        return plan

    async def run(self, tools: ToolRunner) -> None:
        """Runs the session tools asked for, all at once."""
        outputs = await asyncio.gather(*(_run_tool(tools, c.name, a) for c, a, _ in self.runs))
        for (call, _, note), output in zip(self.runs, outputs, strict=True):
            self.results[call.id] = note + output

    def messages(self, text: str) -> list[dict[str, Any]]:
        """The assistant's tool calls and their results, for the next request."""
        tool_calls = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in self.calls
        ]
        return [
            {"role": "assistant", "content": text or None, "tool_calls": tool_calls},
            *(
                {"role": "tool", "tool_call_id": call.id, "content": self.results[call.id]}
                for call in self.calls
            ),
        ]


class ChatCompletionsBrain:
    """A :class:`~voxline.engines.brain.Brain` on ``POST {url}/chat/completions``.

    ``url`` is the API base (``https://api.openai.com/v1``) or the full endpoint. At most
    ``max_tool_rounds`` rounds of tool calls are run per turn; the request after the last
    one asks for words only. ``timeout`` bounds connecting and every wait for more of the
    stream. Close with :meth:`aclose` (a ``client`` passed in is left open).
    """

    def __init__(
        self,
        url: str,
        *,
        model: str,
        api_key: str | None = None,
        client: httpx.AsyncClient | None = None,
        temperature: float | None = 0.3,
        max_tokens: int | None = 200,
        max_tool_rounds: int = 4,
        timeout: float = 10.0,
    ) -> None:
        base = url.rstrip("/")
        self._url = base if base.endswith("/chat/completions") else f"{base}/chat/completions"
        self._host = httpx.URL(self._url).host
        self._model = model
        self._api_key = api_key
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._max_tool_rounds = max_tool_rounds
        self._timeout = httpx.Timeout(timeout)

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def respond(
        self, request: BrainRequest, tools: ToolRunner
    ) -> AsyncGenerator[BrainOutput, None]:
        messages = build_messages(request)
        functions = build_functions(request.tools)
        session_tools = frozenset(tool.name for tool in request.tools) - CALL_CONTROL
        spoke = False
        for round_ in range(self._max_tool_rounds + 1):
            last = round_ == self._max_tool_rounds
            completion = _Completion(id_prefix=f"call_{round_}_")
            try:
                body = self._body(messages, functions, words_only=last)
                async with aclosing(self._stream(body, completion)) as texts:
                    async for text in texts:
                        spoke = True
                        yield TextDelta(text)
            except (httpx.HTTPError, _StreamError) as exc:
                if completion.finish_reason is None:
                    log.warning("LLM at %s failed: %s", self._host, self._describe(exc))
                    yield TextDelta(f" {APOLOGY}" if spoke else APOLOGY)
                    return
            if not completion.calls:
                return

            plan = _Plan.of(completion, session_tools)
            for action in plan.actions:
                yield action
            if not last:  # after the last round, tools called anyway have no use
                # Before any hang-up or transfer, so that what the model asked for is done.
                await plan.run(tools)
            if plan.ending is not None:
                yield plan.ending
                return
            if last or not plan.needs_reply:
                return
            messages += plan.messages("".join(completion.text))

    def _body(
        self, messages: list[dict[str, Any]], functions: list[dict[str, Any]], *, words_only: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": messages,
            "tools": functions,
            "stream": True,
        }
        if words_only:
            body["tool_choice"] = "none"
        if self._temperature is not None:
            body["temperature"] = self._temperature
        if self._max_tokens is not None:
            body["max_tokens"] = self._max_tokens
        return body

    async def _stream(
        self, body: dict[str, Any], completion: _Completion
    ) -> AsyncGenerator[str, None]:
        """The completion's text as it streams; tool calls and the finish go to
        ``completion``. Reads to the end of the response so the connection can be reused."""
        async with self._client.stream(
            "POST", self._url, json=body, headers=self._headers, timeout=self._timeout
        ) as response:
            if response.is_error:
                detail = (await response.aread())[:300].decode(errors="replace")
                raise _StreamError(f"HTTP {response.status_code}: {detail}")
            if response.headers.get("content-type", "").startswith("application/json"):
                # A server that ignores ``stream``: the whole answer at once.
                try:
                    answer = json.loads(await response.aread())
                except ValueError as exc:
                    raise _StreamError("a JSON answer that is not JSON") from exc
                if text := completion.apply(answer, key="message"):
                    yield text
                completion.done = True
                return
            decoder = SseDecoder()
            async for chunk in response.aiter_bytes():
                for data in decoder.feed(chunk):
                    if text := self._event(data, completion):
                        yield text
            for data in decoder.close():
                if text := self._event(data, completion):
                    yield text
        if not completion.done and completion.finish_reason is None:
            raise _StreamError("the stream ended before the completion did")

    @staticmethod
    def _event(data: str, completion: _Completion) -> str:
        if completion.done:
            return ""
        if data.strip() == "[DONE]":
            completion.done = True
            return ""
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise _StreamError(f"an event that is not JSON: {data[:100]!r}") from exc
        return completion.apply(chunk)

    def _describe(self, exc: Exception) -> str:
        text = f"{type(exc).__name__}: {exc}"
        return text.replace(self._api_key, "***") if self._api_key else text
