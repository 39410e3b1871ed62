"""The Omni WebSocket transport (``/v1/omni``): handshake, framing, and the receive loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voxline.protocol import client_frames, events
from voxline.protocol.connect import parse_connect, select_subprotocol
from voxline.protocol.errors import CloseCode, Rejection
from voxline.protocol.events import Event
from voxline.protocol.frames import (
    Audio,
    Control,
    Dropped,
    Framing,
    Inbound,
    MessageTooLarge,
    demux,
    encode_audio,
    encode_event,
    negotiate_framing,
)
from voxline.server.services import Caller, Services
from voxline.session.agent import SessionInfo
from voxline.session.session import Session
from voxline.store.calls import CallRecord

log = logging.getLogger(__name__)

FIRST_FRAME_TIMEOUT = 0.5
WATCH_INTERVAL = 2.0


class _ClientGone(Exception):
    pass


class OmniConnection:
    """``Outbound`` over one accepted WebSocket, in the negotiated framing."""

    def __init__(self, websocket: WebSocket, framing: Framing) -> None:
        self._ws = websocket
        self.framing = framing
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def send_event(self, event: Event) -> None:
        message = encode_event(event, self.framing)
        await self._send(message)

    async def send_audio(self, pcm: bytes) -> None:
        await self._send(encode_audio(pcm, self.framing))

    async def clear_audio(self) -> None:
        """Omni clients clear their own buffer on ``flush``; nothing else to send."""

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self._ws.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason)

    async def _send(self, message: str | bytes) -> None:
        if self._ws.application_state is not WebSocketState.CONNECTED:
            raise _ClientGone
        try:
            if isinstance(message, str):
                await self._ws.send_text(message)
            else:
                await self._ws.send_bytes(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _ClientGone from exc

    async def reject(self, rejection: Rejection) -> None:
        error = events.error(rejection.code, rejection.message, retry_after=rejection.retry_after)
        with contextlib.suppress(_ClientGone):
            await self.send_event(error)
        await self.close(rejection.kind.close_code, rejection.close_reason())


def _message_data(message: Mapping[str, Any]) -> str | bytes | None:
    data = message.get("bytes")
    return data if data is not None else message.get("text")


async def _first_message(websocket: WebSocket) -> tuple[Inbound | None, bool]:
    """The first client message within the timeout, demuxed, and whether the client is gone."""
    try:
        message = await asyncio.wait_for(websocket.receive(), FIRST_FRAME_TIMEOUT)
    except TimeoutError:
        return None, False
    if message["type"] == "websocket.disconnect":
        return None, True
    data = _message_data(message)
    return (demux(data) if data is not None else None), False


async def omni_endpoint(websocket: WebSocket) -> None:
    services: Services = websocket.app.state.services
    offered = list(websocket.scope.get("subprotocols", []))
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in websocket.scope["headers"]
    }
    request = parse_connect(dict(websocket.query_params), headers, offered)
    address = websocket.client.host if websocket.client else "unknown"
    await websocket.accept(subprotocol=select_subprotocol(offered))
    try:
        first, gone = await _first_message(websocket)
    except MessageTooLarge:
        conn = OmniConnection(websocket, Framing.TAGGED)
        await conn.reject(Rejection("message_too_large", "first message over the size limit"))
        return
    if gone:
        return
    override = None if isinstance(request, Rejection) else request.framing
    conn = OmniConnection(websocket, negotiate_framing(first, override))
    if isinstance(request, Rejection):
        services.metrics.rejections.labels(request.code).inc()
        await conn.reject(request)
        return
    caller = await services.authenticate(request.credential, address=address, origin=request.origin)
    if isinstance(caller, Rejection):
        services.metrics.rejections.labels(caller.code).inc()
        await conn.reject(caller)
        return
    info = SessionInfo(
        call_id=f"call_{uuid.uuid4().hex}",
        label=request.label or caller.token_label,
        in_rate=request.rate,
        out_rate=request.rate,
    )
    await _run_call(services, conn, websocket, caller, info, first)


async def _run_call(
    services: Services,
    conn: OmniConnection,
    websocket: WebSocket,
    caller: Caller,
    info: SessionInfo,
    first: Inbound | None,
) -> None:
    metrics = services.metrics
    session = Session(info, conn, services.agent, services.vad, observer=metrics)
    record = CallRecord(
        call_id=info.call_id,
        key_id=caller.key.id,
        session_label=info.label,
        transport="omni",
        started_at=time.time(),
    )
    await asyncio.to_thread(services.calls.open, record)
    metrics.active_sessions.inc()
    watchdog: asyncio.Task[None] | None = None
    try:
        await conn.send_event(
            events.hello(
                call_id=info.call_id,
                in_rate=info.in_rate,
                out_rate=info.out_rate,
                server=services.server_name,
            )
        )
        await conn.send_event(
            events.session_started(
                call_id=info.call_id, label=info.label, in_rate=info.in_rate, out_rate=info.out_rate
            )
        )
        session.start()
        watchdog = asyncio.create_task(_watch(services, session, caller))
        if first is not None:
            await _handle(services, conn, session, first)
        await _receive_loop(services, conn, websocket, session)
    except _ClientGone:
        pass
    except Exception:
        log.exception("session %s failed", info.call_id)
        await session.end(
            "internal_error",
            code=CloseCode.INTERNAL_ERROR,
            error=events.error("internal_error", "the session failed; see server logs"),
        )
    finally:
        session.abandon("client_gone")
        if watchdog is not None:
            watchdog.cancel()
        await caller.lease.release()
        await _finish(services, conn, session, caller)


async def _receive_loop(
    services: Services, conn: OmniConnection, websocket: WebSocket, session: Session
) -> None:
    """Read client messages until the client leaves or the session ends.

    The read loop runs as its own task, raced once against the end of the session, so a
    message costs one plain ``receive`` rather than a fresh task and wait per message.
    """
    reader = asyncio.ensure_future(_read_messages(services, conn, websocket, session))
    ended = asyncio.ensure_future(session.ended.wait())
    try:
        await asyncio.wait({reader, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    if not reader.cancelled():
        reader.result()


async def _read_messages(
    services: Services, conn: OmniConnection, websocket: WebSocket, session: Session
) -> None:
    while not session.ended.is_set():
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", CloseCode.ABNORMAL)
            if conn.close_code is None:
                conn.close_code = code
                conn.close_reason = "client_closed" if code < 1002 else "client_vanished"
            return
        data = _message_data(message)
        if data is None:
            continue
        try:
            inbound = demux(data)
        except MessageTooLarge as exc:
            await session.end(
                "message_too_large",
                code=CloseCode.MESSAGE_TOO_LARGE,
                error=events.error("message_too_large", str(exc)),
            )
            return
        await _handle(services, conn, session, inbound)


async def _handle(
    services: Services, conn: OmniConnection, session: Session, inbound: Inbound
) -> None:
    match inbound:
        case Audio(pcm=pcm):
            session.receive_audio(pcm)
        case Control(message=message):
            parsed = client_frames.parse(message)
            for notice in parsed.notices:
                await conn.send_event(notice)
            if parsed.frame is not None:
                await session.receive(parsed.frame)
        case Dropped(reason=reason):
            services.metrics.dropped_frames.labels(reason).inc()


async def _watch(services: Services, session: Session, caller: Caller) -> None:
    """Every few seconds: keep the lease alive, spend audio against the daily cap, and end
    sessions that outlive the maximum."""
    spent = 0.0
    while not session.ended.is_set():
        await asyncio.sleep(WATCH_INTERVAL)
        await caller.lease.refresh()
        total = session.audio_in_seconds + session.audio_out_seconds
        seconds, spent = total - spent, total
        if seconds > 0 and not await services.limits.add_audio(caller.key, seconds):
            await session.end(
                "daily_cap_exceeded",
                code=CloseCode.TOO_MANY_REQUESTS,
                error=events.error("daily_cap_exceeded", "this key's daily audio cap is spent"),
            )
        elif time.time() - session.stats.started_at > services.settings.max_session_seconds:
            await session.end("max_duration")


async def _finish(
    services: Services, conn: OmniConnection, session: Session, caller: Caller
) -> None:
    metrics = services.metrics
    info = session.info
    stats = session.stats
    audio_in = session.audio_in_seconds
    audio_out = session.audio_out_seconds
    code = conn.close_code or CloseCode.GOING_AWAY
    metrics.active_sessions.dec()
    metrics.sessions.labels(str(code)).inc()
    metrics.audio_in.inc(audio_in)
    metrics.audio_out.inc(audio_out)
    await asyncio.to_thread(
        services.calls.finish,
        info.call_id,
        ended_at=time.time(),
        close_code=int(code),
        close_reason=conn.close_reason or session.end_reason,
        audio_in_seconds=audio_in,
        audio_out_seconds=audio_out,
        turns=stats.turns,
        barge_ins=stats.barge_ins,
    )
