"""A real OpenAI-compatible chat completions server for tests, scripted by the test.

``POST /v1/chat/completions`` on 127.0.0.1, served by uvicorn from a background thread. It
streams the way OpenAI's API does: ``text/event-stream`` of ``chat.completion.chunk``
objects, the role first, content in small token-like pieces a few milliseconds apart, each
tool call's name and then its arguments in pieces, a last chunk with ``finish_reason``, then
``data: [DONE]``. With ``"stream": false`` it answers one ``chat.completion`` object.

Each request takes the next scripted :class:`Reply` (or asks ``respond``), and is recorded
as :class:`Received`, including whether the client hung up before the response ended.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.support.http_server import ThreadedServer

_PIECE = re.compile(r"\s*\S{1,5}|\s+")
_ARGUMENT_PIECE_CHARS = 8
_POLL_S = 0.005
_HANG_LIMIT_S = 60.0


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str | dict[str, Any] = field(default_factory=dict)  # a str is sent verbatim
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted completion.

    ``pause_after``: after that many content pieces (0: right after the role chunk), wait
    for ``resume`` to be set. ``end``: ``"stall"`` stops sending before the final chunk
    and holds the connection open; ``"drop"`` closes it mid-response. ``raw``: network
    writes sent verbatim in place of the generated chunks. ``stream`` overrides what the
    request asked for.
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = None  # default: "tool_calls" with tool calls, else "stop"
    status: int = 200
    pause_after: int | None = None
    resume: threading.Event | None = None
    end: Literal["done", "stall", "drop"] = "done"
    raw: Sequence[bytes] = ()
    stream: bool | None = None
    delay: float | None = None  # between chunks; default: the server's


@dataclass
class Received:
    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case
    finished: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages", [])
        return messages

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = self.body.get("tools", [])
        return tools

    @property
    def function_names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


class _Gone(Exception):
    """The client hung up (or the server is stopping)."""


class _Dropped(Exception):
    """Raised out of the app on purpose: uvicorn then cuts the connection mid-response."""


def _pieces(text: str) -> list[str]:
    """Token-like pieces: a word with its leading space, long words in parts."""
    return _PIECE.findall(text)


class _Writer:
    def __init__(self, send: Send, gone: asyncio.Event, stopping: threading.Event) -> None:
        self._send = send
        self._gone = gone
        self._stopping = stopping

    def _check(self) -> None:
        if self._gone.is_set() or self._stopping.is_set():
            raise _Gone

    async def write(self, data: bytes) -> None:
        self._check()
        try:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
        except OSError as exc:
            raise _Gone from exc

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._gone.wait(), seconds)
        except TimeoutError:
            return
        raise _Gone

    async def wait_for(self, event: threading.Event | None, limit: float = _HANG_LIMIT_S) -> None:
        """Until ``event`` is set (never, for None), or the client leaves, or ``limit``."""
        deadline = time.monotonic() + limit
        while not (event is not None and event.is_set()) and time.monotonic() < deadline:
            self._check()
            await self.sleep(_POLL_S)


class _Streamed(Response):
    """A response written by ``script``, watching for the client hanging up meanwhile."""

    def __init__(
        self,
        script: Callable[[_Writer], Awaitable[None]],
        received: Received,
        stopping: threading.Event,
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._script = script
        self._received = received
        self._stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            await self._script(_Writer(send, gone, self._stopping))
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            self._received.finished.set()
        except _Gone:
            self._received.disconnected.set()
        finally:
            watcher.cancel()


def _error(status: int, message: str, code: str) -> JSONResponse:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _arguments(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


class FakeLLM:
    def __init__(
        self,
        *,
        respond: Callable[[Received], Reply] | None = None,
        default: Reply | None = None,
        api_key: str | None = None,
        delay: float = 0.005,
    ) -> None:
        """``respond`` picks each reply from the request; otherwise the script is used,
        then ``default``, then HTTP 500. With ``api_key``, other keys get HTTP 401."""
        self._settings = (respond, default, api_key, delay)
        self.requests: list[Received] = []
        self._script: collections.deque[Reply] = collections.deque()
        self.reset()
        self._stopping = threading.Event()
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._endpoint, methods=["POST"])]
        )
        self._server = ThreadedServer(self.app, name="fake-llm")

    def reset(self) -> None:
        """Back to how it was made, for the next test on a shared server."""
        self.respond, self.default, self.api_key, self.delay = self._settings
        self.requests.clear()
        self._script.clear()

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    @property
    def url(self) -> str:
        """The API base, as for OpenAI's ``https://api.openai.com/v1``."""
        return f"{self._server.url}/v1"

    def __enter__(self) -> FakeLLM:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # responses held open give up, so the server can stop
        self._server.__exit__()

    # ---- serving ----------------------------------------------------------------------

    def _next_reply(self, received: Received) -> Reply | None:
        if self.respond is not None:
            return self.respond(received)
        if self._script:
            return self._script.popleft()
        return self.default

    async def _endpoint(self, request: Request) -> Response:
        body = await request.json()
        received = Received(body, {name.lower(): value for name, value in request.headers.items()})
        self.requests.append(received)
        if self.api_key is not None and received.headers.get("authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        reply = self._next_reply(received)
        if reply is None:
            return _error(500, "The fake LLM has no reply scripted.", "no_reply")
        if reply.status != 200:
            return _error(reply.status, "The server had an error.", "server_error")
        model = str(body.get("model", "fake-model"))
        stream = reply.stream if reply.stream is not None else bool(body.get("stream"))
        if not stream:
            return JSONResponse(self._completion(reply, model))

        async def script(writer: _Writer) -> None:
            await self._write(reply, model, writer)

        return _Streamed(script, received, self._stopping)

    def _completion(self, reply: Reply, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments(call)},
                }
                for call in reply.tool_calls
            ]
        message["refusal"] = None
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(reply),
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        }

    @staticmethod
    def _finish_reason(reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    async def _write(self, reply: Reply, model: str, writer: _Writer) -> None:
        delay = self.delay if reply.delay is None else reply.delay
        header = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }

        async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            data = json.dumps(
                {**header, "choices": [choice]}, separators=(",", ":"), ensure_ascii=False
            )
            await writer.write(f"data: {data}\n\n".encode())

        async def paused(sent: int) -> None:
            if sent == reply.pause_after:
                await writer.wait_for(reply.resume)

        if reply.raw:
            for data in reply.raw:
                await writer.write(data)
                await writer.sleep(delay)
        else:
            await chunk({"role": "assistant", "content": "" if reply.text else None})
            await paused(0)
            for sent, piece in enumerate(_pieces(reply.text), start=1):
                await writer.sleep(delay)
                await chunk({"content": piece})
                await paused(sent)
            for index, call in enumerate(reply.tool_calls):
                call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
                function = {"name": call.name, "arguments": ""}
                await chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": function,
                            }
                        ]
                    }
                )
                arguments = _arguments(call)
                for start in range(0, len(arguments), _ARGUMENT_PIECE_CHARS):
                    await writer.sleep(delay)
                    piece = arguments[start : start + _ARGUMENT_PIECE_CHARS]
                    await chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
        if reply.end == "stall":
            await writer.wait_for(None)
        if reply.end == "drop":
            raise _Dropped
        if not reply.raw:
            await chunk({}, self._finish_reason(reply))
            await writer.write(b"data: [DONE]\n\n")
