"""Phone calls through FreeSWITCH: ``mod_audio_stream`` connects each call's audio here
(``/freeswitch/audio``), and the Event Socket carries its control.

The module streams the caller as binary L16 frames at 16 kHz mono and plays binary frames
sent back; it sends the text metadata of ``uuid_audio_stream … start`` first, if it was given
any, which names the channel (``{"uuid": "…"}``) unless the URL's query does (``?uuid=…``),
and may name the agent or label the call either way. The URL carries
the configured stream token (``?token=…``). Over the Event Socket, voxline hears the
channel's DTMF and hangup, and acts on it: ``uuid_break`` on barge-in, ``uuid_transfer`` to
the configured target, ``uuid_send_dtmf``, and ``uuid_kill`` to hang up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import uuid
from typing import Any

from starlette.websockets import WebSocket

from voxline.protocol.client_frames import DTMF_DIGITS, Dtmf
from voxline.protocol.errors import CloseCode, Rejection
from voxline.session.agent import SessionInfo
from voxline.session.session import Session
from voxline.telephony.esl import EslError, EventSocket
from voxline.telephony.esl_protocol import EslEvent
from voxline.transports.call import configure, run_call, until_ended
from voxline.transports.phone import PhoneLine, start_configure
from voxline.transports.services import CallServices

log = logging.getLogger(__name__)

RATE = 16000
METADATA_TIMEOUT = 5.0


class FreeSwitchLine(PhoneLine):
    """One ``mod_audio_stream`` socket as the session's ``Outbound``; call control over the
    Event Socket."""

    def __init__(
        self,
        websocket: WebSocket,
        channel: str,
        event_socket: EventSocket | None,
        transfer_target: str | None,
    ) -> None:
        super().__init__(websocket)
        self.channel = channel
        self._esl = event_socket
        self._transfer_target = transfer_target
        self._breaks: set[asyncio.Task[bool]] = set()

    async def send_audio(self, pcm: bytes) -> None:
        await self.send(pcm)

    async def clear_audio(self) -> None:
        """``uuid_break`` without waiting for its reply: the session must not stall on it."""
        task = asyncio.get_running_loop().create_task(
            self._control(self._api(f"uuid_break {self.channel} all"), "uuid_break")
        )
        self._breaks.add(task)
        task.add_done_callback(self._breaks.discard)

    async def _transfer_call(self) -> None:
        if self._transfer_target is None:
            raise RuntimeError("no transfer target configured (VOXLINE_FREESWITCH_TRANSFER_TARGET)")
        await self._api(f"uuid_transfer {self.channel} {self._transfer_target}")

    async def _hang_up_call(self) -> None:
        await self._api(f"uuid_kill {self.channel} NORMAL_CLEARING")

    async def _send_digits(self, digits: str) -> None:
        keys = "".join(d for d in digits.upper() if d in DTMF_DIGITS)
        if keys:
            await self._api(f"uuid_send_dtmf {self.channel} {keys}")

    async def _api(self, line: str) -> None:
        if self._esl is None:
            raise RuntimeError("no Event Socket connection configured")
        await self._esl.api(line)


def _metadata(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _channel_metadata(websocket: WebSocket, *, required: bool) -> dict[str, Any] | None:
    """The first text message as metadata; None if gone. Audio before it is dropped; unless
    ``required`` (it names the channel), a stream whose first message is audio has none."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None:
            return _metadata(text)
        if not required:
            return {}


async def audio_stream(websocket: WebSocket) -> None:
    services: CallServices = websocket.app.state.services
    settings = services.settings
    expected = settings.freeswitch.stream_token
    token = websocket.query_params.get("token", "")
    await websocket.accept()
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        services.metrics.rejections.labels("unauthorized").inc()
        await websocket.close(CloseCode.UNAUTHORIZED, "unauthorized")
        return
    # The metadata may name the agent or label the call even when the URL names the channel.
    named = websocket.query_params.get("uuid")
    try:
        async with asyncio.timeout(METADATA_TIMEOUT):
            metadata = await _channel_metadata(websocket, required=named is None)
    except TimeoutError:
        metadata = {}
    if metadata is None:
        return
    channel = named if named is not None else metadata.get("uuid")
    if not isinstance(channel, str) or not channel or any(c.isspace() for c in channel):
        await websocket.close(CloseCode.BAD_REQUEST, "no channel uuid")
        return
    esl = services.event_socket
    address = websocket.client.host if websocket.client else "unknown"
    agent_id = websocket.query_params.get("agent_id") or metadata.get("agent_id")
    caller = await services.admission.phone(
        settings.phone.key_id,
        address=address,
        agent_id=agent_id if isinstance(agent_id, str) and agent_id else settings.phone.agent_id,
    )
    if isinstance(caller, Rejection):
        log.warning("freeswitch call %s refused: %s", channel, caller.message)
        services.metrics.rejections.labels(caller.code).inc()
        await websocket.close(caller.kind.close_code, caller.close_reason())
        if esl is not None:  # else the parked channel would wait in silence
            with contextlib.suppress(EslError):
                await esl.api(f"uuid_kill {channel} CALL_REJECTED")
        return
    line = FreeSwitchLine(websocket, channel, esl, settings.freeswitch.transfer_target)
    label = settings.phone.label or metadata.get("session_label")
    info = SessionInfo(
        call_id=f"call_{uuid.uuid4().hex}",
        label=label if isinstance(label, str) else None,
        in_rate=RATE,
        out_rate=RATE,
    )
    events: asyncio.Queue[EslEvent] = esl.listen(channel) if esl else asyncio.Queue()

    async def converse(session: Session) -> None:
        line.session = session
        await configure(services, session, caller, start_configure(settings, RATE))
        await until_ended(session, _read(line, session, events))

    try:
        await run_call(services, line, caller, info, transport="freeswitch", converse=converse)
    finally:
        if esl is not None:
            esl.unlisten(channel)


async def _read(line: FreeSwitchLine, session: Session, events: asyncio.Queue[EslEvent]) -> None:
    """The caller's audio and the channel's events, until either ends the call."""
    tasks = [
        asyncio.ensure_future(_read_audio(line, session)),
        asyncio.ensure_future(_read_events(line, session, events)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _read_audio(line: FreeSwitchLine, session: Session) -> None:
    while (data := await line.receive()) is not None:
        if isinstance(data, bytes):
            session.receive_audio(data[: len(data) & ~1])


async def _read_events(
    line: FreeSwitchLine, session: Session, events: asyncio.Queue[EslEvent]
) -> None:
    while True:
        event = await events.get()
        if event.name == "DTMF":
            digit = event.headers.get("DTMF-Digit", "").upper()
            if len(digit) == 1 and digit in DTMF_DIGITS:
                await session.receive(Dtmf(digit))
        elif event.name == "CHANNEL_HANGUP":
            if line.close_code is None:
                line.close_code, line.close_reason = CloseCode.NORMAL, "caller_hung_up"
            return
