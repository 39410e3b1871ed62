"""Everything a server process shares across its sessions, opened and closed once."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import text

from voxline import __version__
from voxline.admission import Admission
from voxline.agents.echo import EchoAgent
from voxline.auth.keys import KeyStore
from voxline.auth.tokens import BrowserTokens
from voxline.config import Settings
from voxline.engines.lazy_stt import LazyTranscriber
from voxline.engines.vad_batch import ChildProcessInference, VadBatcher
from voxline.engines.voices import VoiceLibrary, load_voice, piper_voices, remote_voice
from voxline.limits.policy import LimitPolicy
from voxline.protocol.errors import CloseCode
from voxline.server.metrics import Metrics
from voxline.session.agent import Agent
from voxline.state.backend import StateBackend, StateUnavailable
from voxline.state.memory import MemoryBackend
from voxline.store.agents import AgentStore
from voxline.store.calls import CallRecords
from voxline.store.database import Database
from voxline.store.servers import ServerRegistry
from voxline.store.write_behind import WriteBehind
from voxline.telephony.esl import EventSocket
from voxline.transports.call import WATCH_INTERVAL
from voxline.transports.live import LiveCalls

if TYPE_CHECKING:
    from voxline.engines.stt import Transcriber

log = logging.getLogger(__name__)

SERVER_NAME = f"voxline/{__version__}"
#: The ``session_end`` reason and close code of sessions ended by a shutdown.
SHUTDOWN_REASON = "server_shutdown"
SHUTDOWN_CODE = CloseCode.GOING_AWAY
#: How often this process tells the database it is alive, and looks for calls of
#: processes that are not (see :mod:`voxline.store.servers`).
HEARTBEAT_INTERVAL_S = 10.0
#: How often each process announces itself in the shared state (its node, sessions and
#: capacity: ``GET /admin/nodes``) and frees the seats of processes that stopped doing so.
PRESENCE_INTERVAL_S = 2.0
#: A process not heard of for this long is taken for dead, and its seats are freed.
PRESENCE_TTL_S = 3 * PRESENCE_INTERVAL_S
#: How often call records kept while the database was unreachable are tried again.
WRITE_BEHIND_INTERVAL_S = 1.0
#: How often each process of a node of several (``--workers``) looks for a drain that
#: another of them was asked for.
DRAIN_WATCH_INTERVAL_S = 1.0
#: How long a drain request is kept in the shared state: a node drained for longer is
#: expected to have been stopped (its next start is a new boot, which no drain names).
DRAIN_TTL_S = 7 * 24 * 3600.0


def load_voices(settings: Settings) -> VoiceLibrary:
    """The server's voices (none loaded yet): its Piper voices, or the speech endpoint's."""
    tts = settings.tts
    if tts.url is not None:
        if tts.voice is not None or tts.voices_dir is not None:
            raise ValueError("Piper voices and a remote speech endpoint are exclusive")
        voices = [remote_voice(tts.remote_voice)]
    else:
        voices = piper_voices(tts.voice, tts.voices_dir)
    return VoiceLibrary(
        voices,
        functools.partial(load_voice, remote_url=tts.url, remote_key=tts.key),
        max_loaded=tts.max_loaded_voices,
    )


def transcriber_loader(settings: Settings) -> Callable[[str | None], Transcriber]:
    """What loads a recogniser of the settings' kind, given its model."""
    from voxline.engines.stt import default_workers, load_transcriber

    return functools.partial(
        load_transcriber,
        remote_url=settings.stt.url,
        remote_key=settings.stt.key,
        workers=settings.stt.workers or default_workers(settings.workers),
        threads=settings.stt.threads,
        beam_size=settings.stt.beam,
    )


def build_agent(
    settings: Settings, *, voices: VoiceLibrary | None = None, stt: Transcriber | None = None
) -> Agent:
    """The agent the settings ask for, its engines loaded once for the whole process: it
    speaks in ``voices`` and hears with ``stt`` when given (the server's own, which its HTTP
    API shares), else in and with its own."""
    if settings.agent == "echo":
        return EchoAgent()
    from voxline.agents.default import DefaultAgent, Engines
    from voxline.engines.brain import Brain
    from voxline.engines.knowledge import KnowledgeBase
    from voxline.engines.llm import ChatCompletionsBrain
    from voxline.engines.responder import KnowledgeResponder

    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0))
    knowledge = KnowledgeBase.load(settings.knowledge) if settings.knowledge else None
    brain: Brain = (
        ChatCompletionsBrain(
            settings.llm.url, model=settings.llm.model, api_key=settings.llm.key, client=http
        )
        if settings.llm.url
        else KnowledgeResponder(knowledge)
    )
    load_stt = transcriber_loader(settings)
    voices = voices or load_voices(settings)
    voices.load_default()
    return DefaultAgent(
        Engines(
            stt=stt or load_stt(settings.stt.model),
            voices=voices,
            brain=brain,
            knowledge=knowledge,
            http=http,
            file_hits_as_context=settings.llm.url is not None,
            likely_lines=brain.likely_lines() if isinstance(brain, KnowledgeResponder) else (),
            stt_8k=load_stt(settings.stt.model_8k) if settings.stt.model_8k else None,
        )
    )


class Services:
    def __init__(self, settings: Settings, *, boot: str | None = None) -> None:
        """``boot`` names this start of the node, shared by all its processes (a fresh
        one when not given: a node of one process)."""
        self.settings = settings
        self.boot = boot or uuid.uuid4().hex
        self.metrics = Metrics(settings.node)
        self.db = Database(settings.database)
        self.keys = KeyStore(self.db)
        self.agents = AgentStore(self.db)
        self.servers = ServerRegistry(self.db, stale_after_s=6 * HEARTBEAT_INTERVAL_S)
        self.server_id = self.servers.register()
        self.calls = CallRecords(self.db, server_id=self.server_id, node=settings.node)
        self.call_writes = WriteBehind()
        self.live_calls = LiveCalls()
        self._heartbeat: asyncio.Task[None] | None = None
        self._presence: asyncio.Task[None] | None = None
        self._write_behind: asyncio.Task[None] | None = None
        self._drain_watch: asyncio.Task[None] | None = None
        self._draining = False
        self.backend: StateBackend = (
            _redis_backend(settings.redis_url, self.server_id)
            if settings.redis_url
            else MemoryBackend(process_id=self.server_id)
        )
        self._started_at = time.time()
        self.tokens = BrowserTokens(self.backend)
        self.limits = LimitPolicy(self.backend, settings.limits)
        self.admission = Admission(self.keys, self.tokens, self.limits, self.agents)
        self.vad = VadBatcher(ChildProcessInference())
        # The speech engines of the HTTP API: the default agent's own, shared with its calls;
        # an echo server loads a recogniser only when the API first needs one.
        self.voices = load_voices(settings)
        load_stt = functools.partial(transcriber_loader(settings), settings.stt.model)
        self._agent_owns_speech = settings.agent == "default"
        self.stt: Transcriber = load_stt() if self._agent_owns_speech else LazyTranscriber(load_stt)
        self.agent = build_agent(settings, voices=self.voices, stt=self.stt)
        self.server_name = SERVER_NAME
        # FreeSWITCH call control, when its audio streams are enabled.
        fs = settings.freeswitch
        self.event_socket = (
            EventSocket(fs.esl_host, fs.esl_port, fs.esl_password) if fs.stream_token else None
        )

    async def start(self) -> None:
        self.metrics.start()
        await self._close_lost_calls()
        self._heartbeat = asyncio.create_task(self._beat())
        self._presence = asyncio.create_task(self._announce())
        self._write_behind = asyncio.create_task(self._write_kept_records())
        if self.settings.workers > 1:
            self._drain_watch = asyncio.create_task(self._watch_drain())
        await self.vad.start()
        await self.agent.start()
        if self.event_socket is not None:
            self.event_socket.start()

    @property
    def draining(self) -> bool:
        return self._draining

    def _stop_admitting(self) -> None:
        self._draining = True
        self.admission.stop_sessions()

    async def request_drain(self) -> None:
        """Admit no new session on this node, in any of its processes, and leave the live
        ones to end as they will: readiness fails from now on, so that a load balancer
        sends new callers elsewhere. :class:`StateUnavailable` if the other processes of
        the node cannot be told (this one is draining all the same)."""
        self._stop_admitting()
        if self.settings.workers > 1:
            await self.backend.put(self._drain_key, {"requested_at": time.time()}, DRAIN_TTL_S)

    @property
    def _drain_key(self) -> str:
        return f"drain:{self.settings.node}:{self.boot}"

    async def _watch_drain(self) -> None:
        while not self._draining:
            await asyncio.sleep(DRAIN_WATCH_INTERVAL_S)
            try:
                if await self.backend.get(self._drain_key) is not None:
                    self._stop_admitting()
            except StateUnavailable:
                continue

    async def drain(self) -> None:
        """Shut down gracefully: admit no new session, let the live ones go on for up to
        ``drain_seconds`` to end by themselves, end the rest with ``session_end``
        ``server_shutdown`` and close 1001, and wait up to the grace period for their
        records. Readiness fails from now on."""
        self._stop_admitting()
        wait = self.settings.drain_seconds
        if wait and len(self.live_calls):
            log.info("waiting up to %g s for %d session(s) to end", wait, len(self.live_calls))
            await self.live_calls.ended(wait)
        if len(self.live_calls):
            log.info("ending %d session(s) for shutdown", len(self.live_calls))
        grace = self.settings.shutdown_grace_seconds
        await self.live_calls.drain(SHUTDOWN_REASON, code=SHUTDOWN_CODE, grace_s=grace)

    async def aclose(self) -> None:
        await self.drain()
        for task in (self._heartbeat, self._presence, self._write_behind, self._drain_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.event_socket is not None:
            await self.event_socket.aclose()
        await self.agent.aclose()
        if not self._agent_owns_speech:
            await self.stt.aclose()
            await self.voices.aclose()
        await self.vad.aclose()
        with contextlib.suppress(StateUnavailable):
            await self.backend.withdraw()
        await self.backend.close()
        if not await self.call_writes.flush():
            log.error(
                "%d call record write(s) lost: the database is unreachable", len(self.call_writes)
            )
        await asyncio.to_thread(self.servers.deregister, self.server_id, reason=SHUTDOWN_REASON)
        self.db.close()
        self.metrics.close()

    async def _close_lost_calls(self) -> None:
        closed = await asyncio.to_thread(self.servers.close_lost_calls)
        if closed:
            log.warning("closed %d call record(s) of server processes that are gone", closed)

    async def _write_kept_records(self) -> None:
        while True:
            await asyncio.sleep(WRITE_BEHIND_INTERVAL_S)
            if len(self.call_writes):
                await self.call_writes.flush()

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL_S)
            try:
                await asyncio.to_thread(self.servers.heartbeat, self.server_id)
                await self._close_lost_calls()
            except Exception:
                log.exception("heartbeat failed; retrying")

    def presence(self) -> dict[str, object]:
        """What this process tells the others of itself."""
        return {
            "node": self.settings.node,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "started_at": self._started_at,
            "sessions": len(self.live_calls),
            "max_sessions": self.settings.limits.max_sessions,
            "draining": self._draining,
        }

    async def _announce(self) -> None:
        while True:
            try:
                await self.backend.announce(self.presence(), PRESENCE_TTL_S)
                freed = await self.backend.free_lapsed()
            except StateUnavailable:
                pass
            except Exception:
                log.exception("announcing this process failed; retrying")
            else:
                if freed:
                    log.warning(
                        "freed the seats of %d server process(es) not heard of for %.0f s: %s",
                        len(freed),
                        PRESENCE_TTL_S,
                        ", ".join(freed),
                    )
            await asyncio.sleep(PRESENCE_INTERVAL_S)

    async def readiness(self) -> dict[str, bool]:
        """Whether each shared dependency answers (the database, the state backend) and the
        process is not shutting down."""
        return {
            "database": await asyncio.to_thread(self._database_answers),
            "state_backend": await self._backend_answers(),
            "accepting_sessions": not self._draining,
        }

    def _database_answers(self) -> bool:
        try:
            with self.db.read() as conn:
                conn.execute(text("SELECT 1")).one()
        except Exception:
            return False
        return True

    async def _backend_answers(self) -> bool:
        """Whether the state backend answers and is not settling (new sessions would be
        refused)."""
        try:
            return await self.backend.settling() == 0
        except Exception:
            return False


def _redis_backend(url: str, process_id: str) -> StateBackend:
    from voxline.state.redis import RedisBackend

    # Twice the watchdogs' interval: every live lease is re-asserted by then.
    return RedisBackend(url, settle_s=2 * WATCH_INTERVAL, process_id=process_id)
