"""Twilio, simulated on the wire: signed voice webhooks, a Media Streams client, and the REST
API's call updates.

Messages are as Twilio documents them: webhooks are form posts signed with
``X-Twilio-Signature`` (HMAC-SHA1 of the URL and the sorted parameters, keyed with the auth
token, computed by the twilio library's own validator); the stream sends ``connected``,
``start``, ``media`` (base64 µ-law, 20 ms), ``dtmf`` and ``stop``, plays the ``media`` it gets
in real time, echoes each ``mark`` once the audio before it has played, and on ``clear``
drops what it holds and echoes the pending marks at once. When the REST API updates the call
(new TwiML, or ``Status=completed``) the stream stops, as Twilio's does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.phone import Heard, Pcm, RealTimeCaller
from voxline.audio.g711 import ulaw_decode, ulaw_encode

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "f" * 32
RATE = 8000


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    signature: str = RequestValidator(token).compute_signature(url, params)
    return signature


def call_params(
    call_sid: str, *, caller: str = "+15550001111", called: str = "+15550002222"
) -> dict[str, str]:
    """The form fields of a voice webhook for an inbound call."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": called,
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "To": called,
    }


def new_call_sid() -> str:
    return "CA" + uuid.uuid4().hex


def post_webhook(
    http_base: str, public_url: str, params: dict[str, str], signature: str | None
) -> httpx.Response:
    """POST the webhook to the server at ``http_base``, signed (or not) for ``public_url``,
    the URL Twilio was configured with."""
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    path = public_url.split("/", 3)[3]
    return httpx.post(f"{http_base}/{path}", data=params, headers=headers, timeout=10)


@dataclass(frozen=True)
class StreamTwiml:
    url: str
    parameters: dict[str, str]


def parse_stream_twiml(xml: str) -> StreamTwiml:
    """The ``<Connect><Stream>`` of a TwiML answer."""
    root = ET.fromstring(xml)
    assert root.tag == "Response"
    [connect_verb] = list(root)
    assert connect_verb.tag == "Connect"
    [stream] = list(connect_verb)
    assert stream.tag == "Stream"
    parameters = {p.attrib["name"]: p.attrib["value"] for p in stream if p.tag == "Parameter"}
    return StreamTwiml(stream.attrib["url"], parameters)


@dataclass
class RestRequest:
    method: str
    path: str
    form: dict[str, str]
    authorization: str
    at: float = field(default_factory=time.monotonic)  # when it arrived


class FakeTwilioApi:
    """``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`` on a loopback port,
    answered with a call resource, each request recorded."""

    def __init__(self) -> None:
        self.requests: list[RestRequest] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                api.requests.append(
                    RestRequest("POST", self.path, form, self.headers.get("Authorization", ""))
                )
                call_sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
                body = json.dumps(
                    {"sid": call_sid, "account_sid": ACCOUNT_SID, "status": "in-progress"}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def updates(self, call_sid: str) -> list[dict[str, str]]:
        return [r.form for r in self.requests if r.path.endswith(f"/Calls/{call_sid}.json")]

    def __enter__(self) -> FakeTwilioApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class _Pending:
    """Agent audio held for playing, and the marks between it."""

    items: deque[tuple[str, Any]] = field(default_factory=deque)  # ("audio", pcm) | ("mark", name)
    play_until: float = 0.0  # monotonic time the audio already handed out finishes playing


class TwilioStream(RealTimeCaller):
    """One call's bidirectional Media Stream, as Twilio runs it."""

    rate = RATE

    def __init__(self, ws: ClientConnection, api: FakeTwilioApi, call_sid: str) -> None:
        super().__init__()
        self.ws = ws
        self.api = api
        self.call_sid = call_sid
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.sequence = 0
        self.chunk = 0
        self.marks_sent: list[str] = []  # echoed back to the server
        self.clears: list[float] = []
        self.media_messages = 0
        self.arrived = Heard()  # agent audio as it arrived, before it was played (``heard``)
        self.close_code: int | None = None
        self._pending = _Pending()
        self._reader = asyncio.create_task(self._read())
        self._player = asyncio.create_task(self._play())
        self._started = time.monotonic()

    @classmethod
    async def open(
        cls, server_http: str, twiml: StreamTwiml, api: FakeTwilioApi, call_sid: str
    ) -> TwilioStream:
        path = twiml.url.split("/", 3)[3]
        ws = await connect(f"{server_http.replace('http', 'ws', 1)}/{path}")
        stream = cls(ws, api, call_sid)
        await stream._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await stream._send(
            {
                "event": "start",
                "sequenceNumber": stream._next(),
                "start": {
                    "accountSid": ACCOUNT_SID,
                    "streamSid": stream.stream_sid,
                    "callSid": call_sid,
                    "tracks": ["inbound"],
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    "customParameters": twiml.parameters,
                },
                "streamSid": stream.stream_sid,
            }
        )
        return stream

    def _next(self) -> str:
        self.sequence += 1
        return str(self.sequence)

    async def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(json.dumps(message))

    async def send_frame(self, pcm: Pcm) -> None:
        if self.api.updates(self.call_sid):
            await self.stop()  # the call was redirected or completed: the stream ends
            return
        self.chunk += 1
        await self._send(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "media": {
                    "track": "inbound",
                    "chunk": str(self.chunk),
                    "timestamp": str(int((time.monotonic() - self._started) * 1000)),
                    "payload": base64.b64encode(ulaw_encode(pcm)).decode(),
                },
                "streamSid": self.stream_sid,
            }
        )

    async def dtmf(self, digit: str) -> None:
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def stop(self) -> None:
        if self.ended:
            return
        self.ended = True
        await self._send(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid},
            }
        )
        await self.ws.close()
        await self.closed()

    async def closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        self._player.cancel()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                data = json.loads(message)
                assert data["streamSid"] == self.stream_sid
                match data["event"]:
                    case "media":
                        self.media_messages += 1
                        pcm = ulaw_decode(base64.b64decode(data["media"]["payload"]))
                        self.arrived.audio.append((time.monotonic(), pcm))
                        self._pending.items.append(("audio", pcm))
                    case "mark":
                        self._pending.items.append(("mark", data["mark"]["name"]))
                    case "clear":
                        self.clears.append(time.monotonic())
                        for kind, value in self._pending.items:
                            if kind == "mark":
                                await self._echo_mark(value)
                        self._pending.items.clear()
                    case other:
                        raise AssertionError(f"unexpected message {other!r}")
        except ConnectionClosed:
            pass
        self.ended = True
        self.close_code = self.ws.close_code

    async def _play(self) -> None:
        """Hand out held audio in real time (the caller hears it), echoing marks in order."""
        pending = self._pending
        while True:
            now = time.monotonic()
            if not pending.items or pending.play_until > now:
                await asyncio.sleep(0.005)
                continue
            kind, value = pending.items.popleft()
            if kind == "mark":
                await self._echo_mark(value)
                continue
            self.heard.audio.append((now, value))
            pending.play_until = max(pending.play_until, now) + len(value) / RATE

    async def _echo_mark(self, name: str) -> None:
        self.marks_sent.append(name)
        await self._send(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )
