"""A scripted stand-in for the realtime socket, for client tests.

It follows docs/protocol.md where a client can tell: it selects ``pyai.v1``, checks the
``pyai-key.`` credential (else ``error`` and close 4401), negotiates the framing from the
first frame, greets with ``hello`` and ``session_started``, acknowledges every ``configure``,
echoes caller audio back frame by frame, and ends with ``session_end`` and close 1000 on
``session_ending``. ``on_audio`` adds events to send after the n-th audio frame (from 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from voxline.protocol import client_frames, events
from voxline.protocol.frames import (
    Audio,
    Control,
    Framing,
    Inbound,
    demux,
    encode_audio,
    encode_event,
    negotiate_framing,
)

KEY = "vx_test_scripted"
CALL_ID = "call_scripted"


@dataclass
class Session:
    """What one connection did, as the server saw it; times are event-loop times."""

    offered: list[str]
    path: str
    framing: Framing | None = None
    messages: list[tuple[float, str | bytes]] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    audio: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def query(self) -> dict[str, str]:
        return {name: values[0] for name, values in parse_qs(urlsplit(self.path).query).items()}

    def audio_bytes(self) -> bytes:
        return b"".join(pcm for _, pcm in self.audio)


def _select(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    return Subprotocol("pyai.v1") if "pyai.v1" in offered else None


class ScriptedServer:
    def __init__(self, *, on_audio: dict[int, list[events.Event]] | None = None) -> None:
        self.on_audio = on_audio or {}
        self.sessions: list[Session] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await serve(self._handle, "127.0.0.1", 0, select_subprotocol=_select)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        header = ", ".join(ws.request.headers.get_all("Sec-WebSocket-Protocol"))
        session = Session(
            [entry.strip() for entry in header.split(",") if entry.strip()], ws.request.path
        )
        self.sessions.append(session)
        query = session.query
        rate = int(query.get("rate", "24000"))

        first: Inbound | None = None
        try:
            message = await asyncio.wait_for(ws.recv(), 0.5)
        except TimeoutError:
            pass
        else:
            session.messages.append((loop.time(), message))
            first = demux(message)
        override = query.get("framing")
        framing = negotiate_framing(first, Framing(override) if override else None)
        session.framing = framing

        async def send(event: events.Event) -> None:
            await ws.send(encode_event(event, framing))

        if f"pyai-key.{KEY}" not in session.offered:
            await send(events.error("unauthorized", "invalid API key"))
            await ws.close(4401, "unauthorized")
            return
        await send(events.hello(call_id=CALL_ID, in_rate=rate, out_rate=rate, server="scripted"))
        await send(
            events.session_started(
                call_id=CALL_ID, label=query.get("session_label"), in_rate=rate, out_rate=rate
            )
        )

        async def handle(inbound: Inbound) -> bool:
            """False once the session is over."""
            if isinstance(inbound, Audio):
                pcm = bytes(inbound.pcm)
                session.audio.append((loop.time(), pcm))
                await ws.send(encode_audio(pcm, framing))
                for event in self.on_audio.get(len(session.audio), []):
                    await send(event)
                return True
            if not isinstance(inbound, Control):
                return True
            session.controls.append(inbound.message)
            frame = client_frames.parse(inbound.message).frame
            if isinstance(frame, client_frames.Configure):
                voice = frame.settings.voice_id
                await send(
                    events.configured(
                        call_id=CALL_ID,
                        voice_id=voice,
                        language=None,
                        greeting="greeting" in frame.keys,
                        kb=False,
                        tools=0,
                        endpointing_ms=700,
                        out_rate=rate,
                    )
                )
                await send(
                    events.config_ack(voice_id=voice, honored=frame.keys, ignored=frame.unknown)
                )
            elif isinstance(frame, client_frames.Dtmf):
                for digit in frame.digits:
                    await send(events.dtmf(digit))
            elif isinstance(frame, client_frames.InputText):
                await send(events.transcript("user", frame.text, final=True))
                await send(events.transcript("assistant", "you", final=False))
                await send(events.transcript("assistant", f"you typed {frame.text}", final=True))
            elif isinstance(frame, client_frames.SessionEnding):
                await send(events.session_end(call_id=CALL_ID, reason="session_ending"))
                await ws.close(1000, "session_ending")
                return False
            return True

        if first is not None and not await handle(first):
            return
        async for message in ws:
            session.messages.append((loop.time(), message))
            if not await handle(demux(message)):
                return
