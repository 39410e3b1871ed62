"""Everything a server process shares across its sessions, opened and closed once."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

import httpx

from voxline import __version__
from voxline.agents.echo import EchoAgent
from voxline.auth.keys import SCOPE_SESSION, ApiKey, KeyStore
from voxline.auth.tokens import BrowserTokens, TokenError
from voxline.config import Settings
from voxline.engines.vad_batch import ChildProcessInference, VadBatcher
from voxline.limits.backend import StateBackend
from voxline.limits.memory import MemoryBackend
from voxline.limits.policy import LimitPolicy, SessionLease
from voxline.protocol.errors import Rejection
from voxline.server.metrics import Metrics
from voxline.session.agent import Agent
from voxline.store.calls import CallRecords
from voxline.store.database import Database
from voxline.telephony.esl import EventSocket

SERVER_NAME = f"voxline/{__version__}"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated, admitted caller: the key it spends and the lease it holds."""

    key: ApiKey
    lease: SessionLease
    token_id: str | None = None
    token_label: str | None = None


def build_agent(settings: Settings) -> Agent:
    """The agent the settings ask for, its engines loaded once for the whole process."""
    if settings.agent == "echo":
        return EchoAgent()
    from voxline.agents.default import DefaultAgent, Engines
    from voxline.engines.brain import Brain
    from voxline.engines.knowledge import KnowledgeBase
    from voxline.engines.llm import ChatCompletionsBrain
    from voxline.engines.responder import KnowledgeResponder
    from voxline.engines.speech_cache import CachingSynthesizer
    from voxline.engines.stt import default_workers, load_transcriber
    from voxline.engines.tts import load_synthesizer

    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0))
    knowledge = KnowledgeBase.load(settings.knowledge) if settings.knowledge else None
    brain: Brain = (
        ChatCompletionsBrain(
            settings.llm.url, model=settings.llm.model, api_key=settings.llm.key, client=http
        )
        if settings.llm.url
        else KnowledgeResponder(knowledge)
    )
    transcriber = functools.partial(
        load_transcriber,
        remote_url=settings.stt.url,
        remote_key=settings.stt.key,
        workers=settings.stt.workers or default_workers(settings.workers),
        threads=settings.stt.threads,
        beam_size=settings.stt.beam,
    )
    return DefaultAgent(
        Engines(
            stt=transcriber(settings.stt.model),
            tts=CachingSynthesizer(
                load_synthesizer(
                    str(settings.tts.voice) if settings.tts.voice else None,
                    remote_url=settings.tts.url,
                    remote_key=settings.tts.key,
                    remote_voice=settings.tts.remote_voice,
                )
            ),
            brain=brain,
            knowledge=knowledge,
            http=http,
            file_hits_as_context=settings.llm.url is not None,
            likely_lines=brain.likely_lines() if isinstance(brain, KnowledgeResponder) else (),
            stt_8k=transcriber(settings.stt.model_8k) if settings.stt.model_8k else None,
        )
    )


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.db = Database(settings.database_path)
        self.keys = KeyStore(self.db)
        self.calls = CallRecords(self.db)
        self.backend: StateBackend = (
            _redis_backend(settings.redis_url) if settings.redis_url else MemoryBackend()
        )
        self.tokens = BrowserTokens(self.backend)
        self.limits = LimitPolicy(self.backend, settings.limits)
        self.vad = VadBatcher(ChildProcessInference())
        self.agent = build_agent(settings)
        self.server_name = SERVER_NAME
        # FreeSWITCH call control, when its audio streams are enabled.
        fs = settings.freeswitch
        self.event_socket = (
            EventSocket(fs.esl_host, fs.esl_port, fs.esl_password) if fs.stream_token else None
        )

    async def start(self) -> None:
        self.metrics.start()
        await self.vad.start()
        await self.agent.start()
        if self.event_socket is not None:
            self.event_socket.start()

    async def aclose(self) -> None:
        if self.event_socket is not None:
            await self.event_socket.aclose()
        await self.agent.aclose()
        await self.vad.aclose()
        await self.backend.close()
        self.db.close()
        self.metrics.close()

    async def readiness(self) -> dict[str, bool]:
        """Whether each shared dependency answers: the database, the state backend."""
        return {
            "database": await asyncio.to_thread(self._database_answers),
            "state_backend": await self._backend_answers(),
        }

    def _database_answers(self) -> bool:
        try:
            with self.db.read() as conn:
                conn.execute("SELECT 1").fetchone()
        except Exception:
            return False
        return True

    async def _backend_answers(self) -> bool:
        try:
            await self.backend.get("readyz")
        except Exception:
            return False
        return True

    async def authenticate(
        self, credential: str | None, *, address: str, origin: str | None
    ) -> Caller | Rejection:
        """Who is calling, whether they may, and a concurrency lease if so."""
        blocked = await self.limits.check_auth_block(address)
        if blocked is not None:
            return Rejection(
                "rate_limit_exceeded", "too many failed authentications", retry_after=blocked
            )
        if not credential:
            await self.limits.record_auth_failure(address)
            return Rejection(
                "unauthorized", "missing credential: pass pyai-key.<KEY> as a subprotocol"
            )
        token_id: str | None = None
        token_label: str | None = None
        key: ApiKey | None
        if credential.startswith("vxt_"):
            try:
                claims = await self.tokens.verify(credential, origin)
            except TokenError as exc:
                if exc.code == "unauthorized":
                    await self.limits.record_auth_failure(address)
                return Rejection(exc.code, str(exc))
            key = await asyncio.to_thread(self.keys.get, claims.key_id)
            if key is None or key.revoked_at is not None:
                return Rejection("unauthorized", "the key behind this token was revoked")
            token_id, token_label = claims.token_id, claims.session_label
        else:
            key = await asyncio.to_thread(self.keys.authenticate, credential)
            if key is None:
                await self.limits.record_auth_failure(address)
                return Rejection("unauthorized", "invalid API key")
        if not key.has_scope(SCOPE_SESSION):
            return Rejection("forbidden", f"this key lacks the {SCOPE_SESSION} scope")
        refused = await self.limits.check_connect(address, key.id)
        if refused is not None:
            return refused
        lease = await self.limits.acquire_session(key, token_id=token_id)
        if isinstance(lease, Rejection):
            return lease
        return Caller(key, lease, token_id, token_label)


def _redis_backend(url: str) -> StateBackend:
    from voxline.limits.redis import RedisBackend

    return RedisBackend(url)
