"""The Omni WebSocket transport (``/v1/omni``): handshake, framing, and the receive loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.websockets import WebSocket

from voxline.admission import Caller
from voxline.protocol import call_control, client_frames, events
from voxline.protocol.call_control import HangUp, SendDigits, Transfer
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
from voxline.session.agent import SessionInfo
from voxline.session.session import Session
from voxline.transports.call import CallerGone, CallSocket, configure, run_call, until_ended
from voxline.transports.services import CallServices

FIRST_FRAME_TIMEOUT = 0.5


class OmniConnection(CallSocket):
    """``Outbound`` over one accepted WebSocket, in the negotiated framing."""

    def __init__(self, websocket: WebSocket, framing: Framing) -> None:
        super().__init__(websocket)
        self.framing = framing

    async def send_event(self, event: Event) -> None:
        await self.send(encode_event(event, self.framing))

    async def send_audio(self, pcm: bytes) -> None:
        await self.send(encode_audio(pcm, self.framing))

    async def clear_audio(self) -> None:
        """Omni clients clear their own buffer on ``flush``; nothing else to send."""

    async def transfer(self, request: Transfer) -> bool:
        """The client (a bridge) carries the transfer out; the session stays open."""
        await self.send_event(call_control.event(request))
        return False

    async def hang_up(self, request: HangUp) -> None:
        await self.send_event(call_control.event(request))

    async def send_digits(self, request: SendDigits) -> None:
        await self.send_event(call_control.event(request))

    async def reject(self, rejection: Rejection) -> None:
        error = events.error(rejection.code, rejection.message, retry_after=rejection.retry_after)
        with contextlib.suppress(CallerGone):
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


async def _let_go(admitting: asyncio.Future[Caller | Rejection] | None) -> None:
    """Release the lease of an admission the client did not stay for."""
    if admitting is None:
        return
    with contextlib.suppress(Exception):
        caller = await admitting
        if not isinstance(caller, Rejection):
            await caller.lease.release()


async def omni_endpoint(websocket: WebSocket) -> None:
    """Admit the caller while waiting for its first message, so that ``hello`` goes out as
    soon as both are there: the first message picks the framing ``hello`` is sent in."""
    services: CallServices = websocket.app.state.services
    offered = list(websocket.scope.get("subprotocols", []))
    headers = {
        k.decode("latin-1").lower(): v.decode("latin-1") for k, v in websocket.scope["headers"]
    }
    request = parse_connect(dict(websocket.query_params), headers, offered)
    address = websocket.client.host if websocket.client else "unknown"
    admitting = None
    if not isinstance(request, Rejection):
        admitting = asyncio.ensure_future(
            services.admission.socket(
                request.credential,
                address=address,
                origin=request.origin,
                agent_id=request.agent_id,
            )
        )
    await websocket.accept(subprotocol=select_subprotocol(offered))
    try:
        first, gone = await _first_message(websocket)
    except MessageTooLarge:
        await _let_go(admitting)
        conn = OmniConnection(websocket, Framing.TAGGED)
        await conn.reject(Rejection("message_too_large", "first message over the size limit"))
        return
    except BaseException:
        await _let_go(admitting)
        raise
    if gone:
        await _let_go(admitting)
        return
    override = None if isinstance(request, Rejection) else request.framing
    conn = OmniConnection(websocket, negotiate_framing(first, override))
    if isinstance(request, Rejection):
        services.metrics.rejections.labels(request.code).inc()
        await conn.reject(request)
        return
    assert admitting is not None
    caller = await admitting
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
    await _run_call(services, conn, caller, info, first)


async def _run_call(
    services: CallServices,
    conn: OmniConnection,
    caller: Caller,
    info: SessionInfo,
    first: Inbound | None,
) -> None:
    async def converse(session: Session) -> None:
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
        if first is not None:
            await _handle(services, conn, session, caller, first)
        await until_ended(session, _read_messages(services, conn, session, caller))

    await run_call(services, conn, caller, info, transport="omni", converse=converse)


async def _read_messages(
    services: CallServices, conn: OmniConnection, session: Session, caller: Caller
) -> None:
    while not session.ended.is_set():
        data = await conn.receive()
        if data is None:
            return
        try:
            inbound = demux(data)
        except MessageTooLarge as exc:
            await session.end(
                "message_too_large",
                code=CloseCode.MESSAGE_TOO_LARGE,
                error=events.error("message_too_large", str(exc)),
            )
            return
        await _handle(services, conn, session, caller, inbound)


async def _handle(
    services: CallServices,
    conn: OmniConnection,
    session: Session,
    caller: Caller,
    inbound: Inbound,
) -> None:
    match inbound:
        case Audio(pcm=pcm):
            session.receive_audio(pcm)
        case Control(message=message):
            parsed = client_frames.parse(message)
            for notice in parsed.notices:
                await conn.send_event(notice)
            if isinstance(parsed.frame, client_frames.Configure):
                await configure(services, session, caller, parsed.frame)
            elif parsed.frame is not None:
                await session.receive(parsed.frame)
        case Dropped(reason=reason):
            services.metrics.dropped_frames.labels(reason).inc()
