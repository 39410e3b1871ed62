"""The one gate of every way in: who is calling, whether they may, and a lease if so.

Each way in is one method of :class:`Admission`, composed of the same steps in the same
order, skipping those that do not apply to it: the address's block after failed
authentications, the key (by secret, or by id behind a browser token or the phone line),
refusing revoked keys, the scope, the connect rate of the address and of the key, and for a
session the stored agent it names (one of the key's owner's) and a concurrency lease, and for
an HTTP request for the speech engines a lease of one of its key's slots for those. Each
returns what it admits or the protocol's :class:`Rejection`.

Only credentials a client presents count as failed authentications: a bad page or phone key
is the server's own configuration, not someone guessing.

The gate fails closed: while the shared state the limits live in or the database of keys
is unreachable, nothing is admitted (``service_unavailable``), since no key or limit could
be checked; and once the server
is shutting down, no new session is (``server_shutting_down``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from voxline.auth.keys import SCOPE_SESSION, ApiKey, KeyStore
from voxline.auth.revocations import Revocations
from voxline.auth.tokens import TOKEN_PREFIX, BrowserTokens, TokenClaims, TokenError
from voxline.limits.policy import LimitPolicy, SessionLease
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.errors import Rejection
from voxline.state.backend import StateUnavailable
from voxline.store.agents import AgentStore
from voxline.store.database import DatabaseUnavailable

#: How long a client refused for an unreachable state backend is told to wait.
UNAVAILABLE_RETRY_AFTER_S = 5.0

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Caller:
    """An admitted session: the key it spends, the lease it holds, the browser token it
    came with and the stored agent it named, if any."""

    key: ApiKey
    lease: SessionLease
    token_id: str | None = None
    token_label: str | None = None
    agent: AgentProfile | None = None


@dataclass(frozen=True, slots=True)
class AudioRequest:
    """An admitted HTTP request for the speech engines (speech, transcription): the key it
    spends and the lease of the key's slot it holds while it runs."""

    key: ApiKey
    lease: SessionLease


def _lacks(scope: str) -> Rejection:
    return Rejection("forbidden", f"this key lacks the {scope} scope")


def _fails_closed(
    method: Callable[Concatenate[Admission, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[Admission, _P], Coroutine[Any, Any, _T | Rejection]]:
    """Refuse with ``service_unavailable`` while the state backend or the database cannot
    be reached."""

    @functools.wraps(method)
    async def gate(self: Admission, /, *args: _P.args, **kwargs: _P.kwargs) -> _T | Rejection:
        try:
            return await method(self, *args, **kwargs)
        except StateUnavailable:
            return Rejection(
                "service_unavailable",
                "the server cannot check its limits right now; try again shortly",
                UNAVAILABLE_RETRY_AFTER_S,
            )
        except DatabaseUnavailable:
            return Rejection(
                "service_unavailable",
                "the server cannot reach its database right now; try again shortly",
                UNAVAILABLE_RETRY_AFTER_S,
            )

    return gate


class Admission:
    def __init__(
        self,
        keys: KeyStore,
        tokens: BrowserTokens,
        limits: LimitPolicy,
        agents: AgentStore,
        revocations: Revocations | None = None,
    ) -> None:
        self._keys = keys
        self._revocations = revocations or Revocations(keys)
        self._tokens = tokens
        self._limits = limits
        self._agents = agents
        self._admitting_sessions = True

    def stop_sessions(self) -> None:
        """Refuse every new session from now on: the server is shutting down."""
        self._admitting_sessions = False

    async def still_active(self, key: ApiKey) -> bool:
        """Whether ``key`` is still unrevoked, for sessions that outlive their admission
        (as of a few seconds ago: see :mod:`voxline.auth.revocations`)."""
        return not await self._revocations.revoked(key.id)

    @_fails_closed
    async def agent(self, key: ApiKey, agent_id: str) -> AgentProfile | Rejection:
        """The stored agent ``agent_id`` of ``key``'s owner: for a session that names it in
        ``configure``, after its admission. Another owner's is unknown, like a missing one."""
        agent = await asyncio.to_thread(self._agents.get, key.owner, agent_id)
        if agent is None:
            return Rejection("invalid_agent_id", f"no agent {agent_id[:64]!r}", param="agent_id")
        return agent

    @_fails_closed
    async def socket(
        self,
        credential: str | None,
        *,
        address: str,
        origin: str | None,
        agent_id: str | None = None,
    ) -> Caller | Rejection:
        """A realtime session: a secret key, or a browser token presented from ``origin``;
        starting from the stored agent ``agent_id``, if it names one."""
        blocked = await self._blocked(address)
        if blocked is not None:
            return blocked
        if not credential:
            return await self._failed(
                address, "missing credential: pass pyai-key.<KEY> as a subprotocol"
            )
        if credential.startswith(TOKEN_PREFIX):
            return await self._token(credential, address, origin, agent_id)
        key = await self._by_secret(credential)
        if key is None:
            return await self._failed(address, "invalid API key")
        return await self._session(key, address, _lacks(SCOPE_SESSION), agent_id)

    @_fails_closed
    async def bearer(
        self, authorization: str, *, scope: str | None, address: str
    ) -> ApiKey | Rejection:
        """A REST request: the secret key of its ``Authorization: Bearer`` header, holding
        ``scope`` (None: any key, as for reading about itself)."""
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            return Rejection("unauthorized", "send Authorization: Bearer <secret key>")
        blocked = await self._blocked(address)
        if blocked is not None:
            return blocked
        key = await self._by_secret(secret)
        if key is None:
            return await self._failed(address, "invalid API key")
        if scope is not None and not key.has_scope(scope):
            return _lacks(scope)
        refused = await self._limits.check_connect(address, key.id)
        return key if refused is None else refused

    @_fails_closed
    async def audio_request(
        self, authorization: str, *, scope: str, address: str
    ) -> AudioRequest | Rejection:
        """A REST request that runs on the speech engines: :meth:`bearer`, then one of the
        key's slots for such requests under way (``concurrency_limit_exceeded`` if it has
        none free)."""
        key = await self.bearer(authorization, scope=scope, address=address)
        if isinstance(key, Rejection):
            return key
        lease = await self._limits.acquire_audio_request(key)
        if isinstance(lease, Rejection):
            return lease
        return AudioRequest(key, lease)

    @_fails_closed
    async def page(self, web_key: str, *, address: str) -> ApiKey | Rejection:
        """The server's page key (``web_key``), to mint a browser token for its own page,
        within the address's own rate of page tokens. The browser is not at fault if the key
        is unusable: that is an ``internal_error``."""
        refused = await self._limits.check_page_token(address)
        if refused is not None:
            return refused
        unusable = Rejection(
            "internal_error", f"the server's page key is unknown, revoked or lacks {SCOPE_SESSION}"
        )
        key = await self._by_secret(web_key)
        if key is None:
            return unusable
        if not key.has_scope(SCOPE_SESSION):
            return unusable
        refused = await self._limits.check_connect(address, key.id)
        return key if refused is None else refused

    @_fails_closed
    async def phone(
        self, key_id: str | None, *, address: str, agent_id: str | None = None
    ) -> Caller | Rejection:
        """A phone call, on the configured phone key, from the stored agent ``agent_id`` if
        one is named. ``address`` is the telephony side's (Twilio's, FreeSWITCH's): its
        connects count like any client's."""
        key = await self._phone_key(key_id)
        if isinstance(key, Rejection):
            return key
        lacking = Rejection("forbidden", f"the phone key lacks the {SCOPE_SESSION} scope")
        return await self._session(key, address, lacking, agent_id)

    @_fails_closed
    async def phone_agent(self, key_id: str | None, agent_id: str) -> AgentProfile | Rejection:
        """The stored agent ``agent_id`` a phone call names, looked up before the call is
        answered (Twilio's voice webhook), as :meth:`phone` will: one of the phone key's
        owner's. Spends nothing: the call's connect and seat are taken when it is admitted."""
        key = await self._phone_key(key_id)
        if isinstance(key, Rejection):
            return key
        return await self.agent(key, agent_id)

    async def _token(
        self, token: str, address: str, origin: str | None, agent_id: str | None
    ) -> Caller | Rejection:
        try:
            claims = await self._tokens.verify(token, origin)
        except TokenError as exc:
            # A token from the wrong origin is a real token: no one is guessing.
            if exc.code == "unauthorized":
                await self._limits.record_auth_failure(address)
            return Rejection(exc.code, str(exc))
        key = await self._by_id(claims.key_id)
        if key is None:
            return Rejection("unauthorized", "the key behind this token was revoked")
        return await self._session(key, address, _lacks(SCOPE_SESSION), agent_id, claims)

    # ---- the steps ----------------------------------------------------------------------

    async def _blocked(self, address: str) -> Rejection | None:
        retry_after = await self._limits.check_auth_block(address)
        if retry_after is None:
            return None
        return Rejection("rate_limit_exceeded", "too many failed authentications", retry_after)

    async def _failed(self, address: str, message: str) -> Rejection:
        await self._limits.record_auth_failure(address)
        return Rejection("unauthorized", message)

    async def _by_secret(self, secret: str) -> ApiKey | None:
        """The active key of this secret (the store never answers with a revoked one)."""
        return await asyncio.to_thread(self._keys.authenticate, secret)

    async def _phone_key(self, key_id: str | None) -> ApiKey | Rejection:
        """The active phone key of this id (``VOXLINE_PHONE_KEY_ID``)."""
        if key_id is None:
            return Rejection("unauthorized", "phone calls need a key: set VOXLINE_PHONE_KEY_ID")
        key = await self._by_id(key_id)
        if key is None:
            return Rejection("unauthorized", "the phone key does not exist or was revoked")
        return key

    async def _by_id(self, key_id: str) -> ApiKey | None:
        """The active key of this id."""
        key = await asyncio.to_thread(self._keys.get, key_id)
        return None if key is None or key.revoked else key

    async def _session(
        self,
        key: ApiKey,
        address: str,
        lacking: Rejection,
        agent_id: str | None,
        token: TokenClaims | None = None,
    ) -> Caller | Rejection:
        if not self._admitting_sessions:
            return Rejection("server_shutting_down", "the server is shutting down")
        if not key.has_scope(SCOPE_SESSION):
            return lacking
        refused = await self._limits.check_connect(address, key.id)
        if refused is not None:
            return refused
        agent = None if agent_id is None else await self.agent(key, agent_id)
        if isinstance(agent, Rejection):
            return agent
        token_id = token.token_id if token is not None else None
        lease = await self._limits.acquire_session(key, token_id=token_id)
        if isinstance(lease, Rejection):
            return lease
        label = token.session_label if token is not None else None
        return Caller(key, lease, token_id, label, agent)
