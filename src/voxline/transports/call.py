"""One call over the one session engine, whatever its wire: what every transport shares.

A transport authenticates or admits the caller, makes a :class:`CallSocket` that speaks its
wire format, and hands both to :func:`run_call` with its ``converse`` coroutine (greet,
then read the far end until it leaves). ``run_call`` owns the rest: the session, started
from the stored agent the caller named, its call record from start to end (naming that
agent, or at the end the last one a ``configure`` named), the metrics, the lease and the
watchdog that keeps it alive and spends the daily audio cap. Every ``configure`` goes
through :func:`configure`, which starts the session over from the agent one names.

The watchdog outlives faults of the shared state: while Redis is unreachable the session
goes on, its maximum length still enforced by this process's clock, and once Redis answers
again the lease is re-asserted (taken again if Redis lost it), so that concurrency limits
hold after a Redis restart, and the audio spent meanwhile is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voxline.admission import Caller
from voxline.protocol import events
from voxline.protocol.client_frames import Configure
from voxline.protocol.errors import CLIENT_NOT_READING, CloseCode, Rejection
from voxline.session.agent import SessionInfo
from voxline.session.outbound import Outbound
from voxline.session.session import Session
from voxline.session.turns import TurnSettings
from voxline.state.backend import StateUnavailable
from voxline.store.calls import CallRecord
from voxline.transports.services import CallServices

log = logging.getLogger(__name__)

WATCH_INTERVAL = 2.0
#: While the shared state is unreachable, the watchdog looks more often, so that leases are
#: re-asserted soon after it returns, before retrying clients can take their seats.
OUTAGE_WATCH_INTERVAL = 0.5


class CallerGone(Exception):
    """The far end left: there is no one to send to any more."""


class Line(Outbound, Protocol):
    """The session's ``Outbound``, plus how the call closed, for its record."""

    close_code: int | None
    close_reason: str | None


class CallSocket:
    """The WebSocket of one call. Sends raise :class:`CallerGone` once it is gone; the first
    close, ours or the far end's, gives the call record its code and reason.

    Subclasses complete it into a :class:`Line` in their wire format.
    """

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def close(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason)

    async def send(self, message: str | bytes) -> None:
        ws = self.websocket
        if ws.application_state is not WebSocketState.CONNECTED:
            raise CallerGone
        try:
            if isinstance(message, str):
                await ws.send_text(message)
            else:
                await ws.send_bytes(message)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise CallerGone from exc

    async def receive(self) -> str | bytes | None:
        """The next message, or None once the far end has closed (its code recorded)."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                if self.close_code is None:
                    self.close_code, self.close_reason = far_end_close(
                        message.get("code", CloseCode.ABNORMAL), message.get("reason")
                    )
                return None
            data: str | bytes | None = message.get("bytes")
            if data is None:
                data = message.get("text")
            if data is not None:
                return data


def far_end_close(code: int, reason: str | None) -> tuple[int, str]:
    """The record of a close the far end's side reported.

    uvicorn reports a close frame with its code and reason, and a connection that dropped
    without one as 1005 or 1006 with no reason at all: a client that vanished (1006). A close
    frame without a status (1005, what Node's ``ws.close()`` sends) is a normal close,
    recorded as 1000, as are 1000 and 1001; 1008 ``client_not_reading`` is the server's own
    WebSocket layer giving up on the client (:mod:`voxline.server.connections`).
    """
    if reason is None:
        return CloseCode.ABNORMAL, "client_vanished"
    if code == CloseCode.POLICY_VIOLATION and reason == CLIENT_NOT_READING:
        return code, CLIENT_NOT_READING
    if code == CloseCode.NO_STATUS:
        return CloseCode.NORMAL, "client_closed"
    return code, "client_closed" if code < 1002 else "client_vanished"


async def run_call(
    services: CallServices,
    conn: Line,
    caller: Caller,
    info: SessionInfo,
    *,
    transport: str,
    converse: Callable[[Session], Awaitable[None]],
) -> None:
    """Run one call to its end and leave its record, however it ends. The record is
    written beside the start of the call, not before it: the caller is not kept waiting
    on the database."""
    metrics = services.metrics
    info.defaults = info.config = replace(
        info.config, transfer_destination=services.settings.transfer_destination
    )
    turn_settings = TurnSettings()
    if caller.agent is not None:
        await services.agent.prepare(caller.agent)
        info.start_from(caller.agent)
        turn_settings.apply(info.config)
    session = Session(
        info,
        conn,
        services.agent,
        services.vad,
        turn_settings=turn_settings,
        observer=metrics,
        idle_seconds=services.settings.idle_session_seconds,
        paced=True,
    )
    record = CallRecord(
        call_id=info.call_id,
        key_id=caller.key.id,
        session_label=info.label,
        agent_id=caller.agent.id if caller.agent is not None else None,
        transport=transport,
        started_at=time.time(),
    )
    opened = asyncio.ensure_future(
        services.call_writes.run(functools.partial(services.calls.open, record))
    )
    metrics.active_sessions.inc()
    live = services.live_calls
    watchdog: asyncio.Task[None] | None = None
    try:
        await live.enter(session)
        session.start()
        watchdog = asyncio.create_task(_watch(services, session, caller))
        await converse(session)
    except CallerGone:
        pass
    except Exception:
        log.exception("session %s failed", info.call_id)
        await session.fail()
    finally:
        session.abandon("client_gone")
        if watchdog is not None:
            watchdog.cancel()
        with contextlib.suppress(StateUnavailable):  # else the lease lapses by itself
            await caller.lease.release()
        try:
            await opened
            await _finish(services, conn, session)
        finally:
            live.leave(session)


async def configure(
    services: CallServices, session: Session, caller: Caller, frame: Configure
) -> None:
    """Hand ``frame`` to the session. One naming a stored agent other than the session's
    starts the session over from that agent's profile, which the frame's own keys then
    override; an agent the caller's key may not use ends the call (``invalid_agent_id``)."""
    named = frame.agent_id
    if named is not None and (session.info.agent is None or session.info.agent.id != named):
        agent = await services.admission.agent(caller.key, named)
        if isinstance(agent, Rejection):
            services.metrics.rejections.labels(agent.code).inc()
            error = events.error(agent.code, agent.message)
            await session.end(agent.code, code=agent.kind.close_code, error=error)
            return
        await services.agent.prepare(agent)
        session.info.start_from(agent)
    await session.receive(frame)


async def until_ended(session: Session, reading: Coroutine[Any, Any, None]) -> None:
    """Run ``reading`` (the far end's messages) until it returns or the session ends.

    The read loop runs as its own task, raced once against the end of the session, so a
    message costs one plain ``receive`` rather than a fresh task and wait per message.
    """
    reader = asyncio.ensure_future(reading)
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


async def _watch(services: CallServices, session: Session, caller: Caller) -> None:
    """Every few seconds: end sessions that outlive the maximum or whose key was revoked,
    keep the lease alive, spend audio against the daily cap, and let the session see the
    time pass (idle calls). Survives any fault but its session's end."""
    spent = 0.0
    live = services.live_calls
    outage = False
    while not session.ended.is_set():
        await asyncio.sleep(OUTAGE_WATCH_INTERVAL if outage else WATCH_INTERVAL)
        session.tick()
        if time.time() - session.stats.started_at > services.settings.max_session_seconds:
            await session.end("max_duration")
            return
        try:
            if not await services.admission.still_active(caller.key):
                await session.end(
                    "key_revoked",
                    code=CloseCode.UNAUTHORIZED,
                    error=events.error("unauthorized", "this session's API key was revoked"),
                )
                return
            await caller.lease.refresh()
            total = session.audio_in_seconds + session.audio_out_seconds
            within_cap = total <= spent or await services.limits.add_audio(
                caller.key, total - spent
            )
            spent = total
        except StateUnavailable as exc:
            outage = True
            live.state_unreachable(exc)
            continue
        except Exception:
            log.exception("session %s: watchdog check failed; retrying", session.info.call_id)
            continue
        if outage:
            outage = False
            live.state_reachable()
        if not within_cap:
            await session.end(
                "daily_cap_exceeded",
                code=CloseCode.TOO_MANY_REQUESTS,
                error=events.error("daily_cap_exceeded", "this key's daily audio cap is spent"),
            )


async def _finish(services: CallServices, conn: Line, session: Session) -> None:
    metrics = services.metrics
    stats = session.stats
    audio_in = session.audio_in_seconds
    audio_out = session.audio_out_seconds
    code = conn.close_code or CloseCode.GOING_AWAY
    metrics.active_sessions.dec()
    metrics.sessions.labels(str(code)).inc()
    metrics.audio_in.inc(audio_in)
    metrics.audio_out.inc(audio_out)
    finish = functools.partial(
        services.calls.finish,
        session.info.call_id,
        ended_at=time.time(),
        close_code=int(code),
        close_reason=conn.close_reason or session.end_reason,
        audio_in_seconds=audio_in,
        audio_out_seconds=audio_out,
        turns=session.turns,
        barge_ins=stats.barge_ins,
        agent_id=session.info.agent.id if session.info.agent is not None else None,
    )
    await services.call_writes.run(finish)
