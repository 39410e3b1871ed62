"""The admission gate: every way in refuses the same things with the messages clients see,
counts failed authentications only where a client presented the credential, and admits with
what the caller needs; on a real SQLite key store, state backend and limit policy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from voxline.admission import Admission, AudioRequest, Caller
from voxline.auth.keys import (
    SCOPE_CALLS_READ,
    SCOPE_SESSION,
    SCOPE_SPEECH,
    ApiKey,
    KeyStore,
)
from voxline.auth.revocations import Revocations
from voxline.auth.tokens import BrowserTokens
from voxline.config import LimitSettings
from voxline.limits.policy import LimitPolicy, SessionLease
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.errors import Rejection
from voxline.state.backend import StateUnavailable
from voxline.state.memory import MemoryBackend
from voxline.store.agents import AgentStore
from voxline.store.database import Database, DatabaseUnavailable

ADDRESS = "192.0.2.10"
ORIGIN = "https://app.example.com"
CONNECTS_PER_MINUTE_PER_KEY = 2
AUTH_FAILURES_PER_MINUTE = 3
KEY_BUSY = "this key already has 1 concurrent sessions"
PAGE_KEY_UNUSABLE = "the server's page key is unknown, revoked or lacks omni:session"


@dataclass(frozen=True)
class Issued:
    """A key's id and secret, and a browser token of it (minted while it could mint)."""

    key_id: str
    secret: str
    token: str


UNKNOWN = Issued("key_00000000", "vx_test_" + "x" * 43, "vxt_" + "x" * 43)


@dataclass
class Gate:
    admission: Admission
    keys: KeyStore
    tokens: BrowserTokens
    agents: AgentStore | None = None

    async def issue(
        self, *, scopes: tuple[str, ...] = (SCOPE_SESSION, SCOPE_CALLS_READ), **limits: int
    ) -> Issued:
        key, secret = await asyncio.to_thread(self.keys.create, env="live", scopes=scopes, **limits)
        token = UNKNOWN.token
        if key.has_scope(SCOPE_SESSION):
            minted = await self.tokens.mint(key, allowed_origins=[ORIGIN], session_label="desk")
            token = minted.token
        return Issued(key.id, secret, token)

    def revoke(self, issued: Issued) -> None:
        assert self.keys.revoke(issued.key_id)


@pytest.fixture
def make_gate(tmp_path: Path) -> Iterator[Callable[..., Gate]]:
    databases: list[Database] = []

    def make(**limits: int) -> Gate:
        db = Database(tmp_path / f"voxline-{len(databases)}.db")
        databases.append(db)
        backend = MemoryBackend()
        settings = LimitSettings(
            **{  # type: ignore[arg-type]
                "connects_per_minute_per_key": 1000,
                "connects_per_minute_per_address": 1000,
                "auth_failures_per_minute_per_address": AUTH_FAILURES_PER_MINUTE,
                **limits,
            }
        )
        keys, tokens = KeyStore(db), BrowserTokens(backend)
        agents = AgentStore(db)
        # Revocations looked up at every check: their interval is tests/auth's business.
        revocations = Revocations(keys, interval=0)
        admission = Admission(keys, tokens, LimitPolicy(backend, settings), agents, revocations)
        return Gate(admission, keys, tokens, agents)

    yield make
    for db in databases:
        db.close()


@pytest.fixture
def gate(make_gate: Callable[..., Gate]) -> Gate:
    return make_gate()


Admitted = ApiKey | Caller | Rejection
Attempt = Callable[[Admission, Issued], Awaitable[Admitted]]


def _socket(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.socket(issued.secret, address=ADDRESS, origin=None)


def _token(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.socket(issued.token, address=ADDRESS, origin=ORIGIN)


def _bearer(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    authorization = f"Bearer {issued.secret}"
    return admission.bearer(authorization, scope=SCOPE_CALLS_READ, address=ADDRESS)


def _audio(admission: Admission, issued: Issued) -> Awaitable[Admitted | AudioRequest]:
    authorization = f"Bearer {issued.secret}"
    return admission.audio_request(authorization, scope=SCOPE_SPEECH, address=ADDRESS)


def _page(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.page(issued.secret, address=ADDRESS)


def _phone(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.phone(issued.key_id, address=ADDRESS)


#: Every way in, and the scope it needs.
DOORS: dict[str, tuple[Attempt, str]] = {
    "socket": (_socket, SCOPE_SESSION),
    "token": (_token, SCOPE_SESSION),
    "bearer": (_bearer, SCOPE_CALLS_READ),
    "page": (_page, SCOPE_SESSION),
    "phone": (_phone, SCOPE_SESSION),
}

# Tokens are minted only from keys with the session scope, so no token lacks it; a REST
# request and the page's token minting hold no session, so no concurrency limit refuses them.
REFUSALS = [
    ("socket", "unknown", "unauthorized", "invalid API key"),
    ("socket", "revoked", "unauthorized", "invalid API key"),
    ("socket", "scope", "forbidden", "this key lacks the omni:session scope"),
    ("socket", "rate", "rate_limit_exceeded", "too many connections for this key"),
    ("socket", "concurrency", "concurrency_limit_exceeded", KEY_BUSY),
    ("token", "unknown", "unauthorized", "unknown or expired session token"),
    ("token", "revoked", "unauthorized", "the key behind this token was revoked"),
    ("token", "rate", "rate_limit_exceeded", "too many connections for this key"),
    ("token", "concurrency", "concurrency_limit_exceeded", "this session token is already in use"),
    ("bearer", "unknown", "unauthorized", "invalid API key"),
    ("bearer", "revoked", "unauthorized", "invalid API key"),
    ("bearer", "scope", "forbidden", "this key lacks the calls:read scope"),
    ("bearer", "rate", "rate_limit_exceeded", "too many connections for this key"),
    ("page", "unknown", "internal_error", PAGE_KEY_UNUSABLE),
    ("page", "revoked", "internal_error", PAGE_KEY_UNUSABLE),
    ("page", "scope", "internal_error", PAGE_KEY_UNUSABLE),
    ("page", "rate", "rate_limit_exceeded", "too many connections for this key"),
    ("phone", "unknown", "unauthorized", "the phone key does not exist or was revoked"),
    ("phone", "revoked", "unauthorized", "the phone key does not exist or was revoked"),
    ("phone", "scope", "forbidden", "the phone key lacks the omni:session scope"),
    ("phone", "rate", "rate_limit_exceeded", "too many connections for this key"),
    ("phone", "concurrency", "concurrency_limit_exceeded", KEY_BUSY),
]


async def _release(admitted: Admitted) -> None:
    if isinstance(admitted, Caller):
        await admitted.lease.release()


@pytest.mark.parametrize(
    ("door", "refusal", "code", "message"), REFUSALS, ids=[f"{d}-{r}" for d, r, *_ in REFUSALS]
)
async def test_every_way_in_refuses(
    make_gate: Callable[..., Gate], door: str, refusal: str, code: str, message: str
) -> None:
    gate = make_gate(connects_per_minute_per_key=CONNECTS_PER_MINUTE_PER_KEY)
    attempt, scope = DOORS[door]
    issued = UNKNOWN
    if refusal == "revoked":
        issued = await gate.issue()
        gate.revoke(issued)
    elif refusal == "scope":
        [other] = {SCOPE_SESSION, SCOPE_CALLS_READ} - {scope}
        issued = await gate.issue(scopes=(other,))
    elif refusal == "rate":
        issued = await gate.issue()
        for _ in range(CONNECTS_PER_MINUTE_PER_KEY):
            admitted = await attempt(gate.admission, issued)
            assert not isinstance(admitted, Rejection), admitted
            await _release(admitted)
    elif refusal == "concurrency":
        issued = await gate.issue(concurrency=1)
        assert isinstance(await attempt(gate.admission, issued), Caller)
    refused = await attempt(gate.admission, issued)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.message) == (code, message)
    if refusal == "rate":
        assert refused.retry_after is not None
        assert 0 < refused.retry_after <= 60 / CONNECTS_PER_MINUTE_PER_KEY
    else:
        assert refused.retry_after is None


async def test_sessions_are_admitted_with_their_key_lease_and_token(gate: Gate) -> None:
    issued = await gate.issue()
    for attempt in (_socket, _phone):
        caller = await attempt(gate.admission, issued)
        assert isinstance(caller, Caller)
        assert caller.key.id == issued.key_id
        assert isinstance(caller.lease, SessionLease)
        assert (caller.token_id, caller.token_label) == (None, None)
        await caller.lease.release()
    caller = await _token(gate.admission, issued)
    assert isinstance(caller, Caller)
    assert caller.key.id == issued.key_id
    assert caller.token_id is not None
    assert caller.token_label == "desk"


async def test_rest_requests_and_page_tokens_hold_no_session(gate: Gate) -> None:
    issued = await gate.issue(concurrency=1)
    held = await _socket(gate.admission, issued)
    assert isinstance(held, Caller)
    for attempt in (_bearer, _page):
        key = await attempt(gate.admission, issued)
        assert isinstance(key, ApiKey)
        assert key.id == issued.key_id


async def test_a_phone_line_without_a_key_is_refused(gate: Gate) -> None:
    refused = await gate.admission.phone(None, address=ADDRESS)
    assert refused == Rejection(
        "unauthorized", "phone calls need a key: set VOXLINE_PHONE_KEY_ID", None
    )


async def test_phone_calls_count_against_the_address_connect_rate(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(connects_per_minute_per_address=2)
    issued = await gate.issue()
    for _ in range(2):
        caller = await _phone(gate.admission, issued)
        assert isinstance(caller, Caller)
        await caller.lease.release()
    refused = await _phone(gate.admission, issued)
    assert isinstance(refused, Rejection)
    assert (refused.code, refused.message) == (
        "rate_limit_exceeded",
        "too many connections from this address",
    )
    # The address is the telephony side's: another one is counted on its own.
    assert isinstance(await gate.admission.phone(issued.key_id, address="192.0.2.99"), Caller)


def _missing_credential(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.socket(None, address=ADDRESS, origin=None)


def _malformed_bearer(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.bearer(f"Basic {issued.secret}", scope=SCOPE_CALLS_READ, address=ADDRESS)


def _token_elsewhere(admission: Admission, issued: Issued) -> Awaitable[Admitted]:
    return admission.socket(issued.token, address=ADDRESS, origin="https://evil.example")


@pytest.mark.parametrize(
    "failure",
    [_missing_credential, _socket, _token, _bearer],
    ids=["missing-credential", "socket-key", "token", "bearer-key"],
)
async def test_failed_authentications_block_the_address(gate: Gate, failure: Attempt) -> None:
    for _ in range(AUTH_FAILURES_PER_MINUTE):
        refused = await failure(gate.admission, UNKNOWN)
        assert isinstance(refused, Rejection) and refused.code == "unauthorized"
    good = await gate.issue()
    for attempt in (_socket, _bearer):
        blocked = await attempt(gate.admission, good)
        assert isinstance(blocked, Rejection)
        assert (blocked.code, blocked.message) == (
            "rate_limit_exceeded",
            "too many failed authentications",
        )
        assert blocked.retry_after is not None and blocked.retry_after > 0
    # Another address is not blocked.
    assert isinstance(
        await gate.admission.socket(good.secret, address="192.0.2.99", origin=None), Caller
    )


@pytest.mark.parametrize(
    ("refusal", "presents", "code"),
    [
        (_malformed_bearer, "a real key", "unauthorized"),
        (_token_elsewhere, "a real key", "origin_not_allowed"),
        (_page, "an unknown key", "internal_error"),
        (_phone, "an unknown key", "unauthorized"),
    ],
    ids=["malformed-bearer", "token-from-another-origin", "page-key", "phone-key"],
)
async def test_what_no_one_guessed_counts_no_failed_authentication(
    gate: Gate, refusal: Attempt, presents: str, code: str
) -> None:
    good = await gate.issue()
    for _ in range(AUTH_FAILURES_PER_MINUTE + 1):
        refused = await refusal(gate.admission, good if presents == "a real key" else UNKNOWN)
        assert isinstance(refused, Rejection) and refused.code == code
    assert isinstance(await _socket(gate.admission, good), Caller)


class Unreachable(MemoryBackend):
    """A state backend that can be cut off, as Redis is in an outage."""

    down = False

    async def peek(self, bucket: str, limit: int, window_s: float) -> float | None:
        if self.down:
            raise StateUnavailable("down")
        return await super().peek(bucket, limit, window_s)

    async def hit(self, bucket: str, limit: int, window_s: float) -> float | None:
        if self.down:
            raise StateUnavailable("down")
        return await super().hit(bucket, limit, window_s)


async def test_every_way_in_fails_closed_while_the_state_backend_is_unreachable(
    tmp_path: Path,
) -> None:
    backend = Unreachable()
    with Database(tmp_path / "voxline.db") as db:
        keys, tokens = KeyStore(db), BrowserTokens(backend)
        limits = LimitPolicy(backend, LimitSettings())
        gate = Gate(Admission(keys, tokens, limits, AgentStore(db)), keys, tokens)
        issued = await gate.issue()
        backend.down = True
        for attempt in (_socket, _token, _bearer, _page, _audio):
            refused = await attempt(gate.admission, issued)
            assert isinstance(refused, Rejection)
            assert (refused.code, refused.kind.close_code, refused.kind.http_status) == (
                "service_unavailable",
                1013,
                503,
            )
            assert refused.retry_after is not None and refused.retry_after > 0
        backend.down = False
        assert isinstance(await _socket(gate.admission, issued), Caller)


async def test_a_server_shutting_down_admits_no_session_but_still_answers_requests(
    gate: Gate,
) -> None:
    issued = await gate.issue()
    gate.admission.stop_sessions()
    for attempt in (_socket, _token):
        refused = await attempt(gate.admission, issued)
        assert isinstance(refused, Rejection)
        assert (refused.code, refused.kind.close_code) == ("server_shutting_down", 1001)
    assert isinstance(await _bearer(gate.admission, issued), ApiKey)


async def test_a_phone_calls_agent_is_looked_up_before_the_call_is_answered(
    make_gate: Callable[..., Gate],
) -> None:
    """What Twilio's voice webhook asks before answering: whether the agent a call names is
    one of the phone key's owner's, as the call's admission will, spending nothing."""
    gate = make_gate(connects_per_minute_per_key=1)
    assert gate.agents is not None
    issued = await gate.issue(concurrency=1)
    mine = gate.agents.create("default", {"name": "Desk"})
    theirs = gate.agents.create("globex", {"name": "Theirs"})
    for _ in range(3):  # more than the key's one connect a minute
        assert await gate.admission.phone_agent(issued.key_id, mine.id) == mine
    for name in (theirs.id, "agent_unknown"):
        refused = await gate.admission.phone_agent(issued.key_id, name)
        assert isinstance(refused, Rejection)
        assert (refused.code, refused.retry_after) == ("invalid_agent_id", None)
    # The lookups took neither the key's connect nor its seat.
    caller = await gate.admission.phone(issued.key_id, address=ADDRESS, agent_id=mine.id)
    assert isinstance(caller, Caller) and caller.agent == mine
    await caller.lease.release()

    for key_id in (None, UNKNOWN.key_id):
        refused = await gate.admission.phone_agent(key_id, mine.id)
        assert refused == await gate.admission.phone(key_id, address=ADDRESS)
        assert isinstance(refused, Rejection) and refused.code == "unauthorized"
    gate.revoke(issued)
    refused = await gate.admission.phone_agent(issued.key_id, mine.id)
    assert refused == Rejection("unauthorized", "the phone key does not exist or was revoked")


class AgentsAway(AgentStore):
    """Agents in a database that cannot be reached."""

    def get(self, owner: str, agent_id: str) -> AgentProfile | None:
        raise DatabaseUnavailable("down")


async def test_a_phone_calls_agent_that_cannot_be_looked_up_now_is_worth_calling_again(
    tmp_path: Path,
) -> None:
    with Database(tmp_path / "voxline.db") as db:
        keys, backend = KeyStore(db), MemoryBackend()
        tokens = BrowserTokens(backend)
        gate = Gate(
            Admission(keys, tokens, LimitPolicy(backend, LimitSettings()), AgentsAway(db)),
            keys,
            tokens,
        )
        issued = await gate.issue()
        refused = await gate.admission.phone_agent(issued.key_id, "agent_desk")
    assert isinstance(refused, Rejection)
    assert refused.code == "service_unavailable"
    assert refused.retry_after is not None and refused.retry_after > 0


async def test_a_key_is_still_active_until_revoked(gate: Gate) -> None:
    issued = await gate.issue()
    caller = await _socket(gate.admission, issued)
    assert isinstance(caller, Caller)
    assert await gate.admission.still_active(caller.key)
    await asyncio.to_thread(gate.revoke, issued)
    assert not await gate.admission.still_active(caller.key)


async def test_a_session_naming_an_agent_gets_its_owners_profile_before_a_lease(
    gate: Gate,
) -> None:
    """Every way a session comes in resolves the agent it names for the key's owner; one it
    may not use (unknown, or another owner's) is refused without taking a seat."""
    assert gate.agents is not None
    issued = await gate.issue(concurrency=1)
    mine = gate.agents.create("default", {"name": "Desk", "greeting": "Hi."})
    theirs = gate.agents.create("globex", {"name": "Theirs"})
    ways = {
        "socket": lambda name: gate.admission.socket(
            issued.secret, address=ADDRESS, origin=None, agent_id=name
        ),
        "token": lambda name: gate.admission.socket(
            issued.token, address=ADDRESS, origin=ORIGIN, agent_id=name
        ),
        "phone": lambda name: gate.admission.phone(issued.key_id, address=ADDRESS, agent_id=name),
    }
    for way, attempt in ways.items():
        for name in (theirs.id, "agent_unknown"):
            refused = await attempt(name)
            assert isinstance(refused, Rejection), way
            assert (refused.code, refused.kind.close_code) == ("invalid_agent_id", 4400)
        caller = await attempt(mine.id)  # the refusals took no seat of the key's one
        assert isinstance(caller, Caller), (way, caller)
        assert caller.agent == mine
        await caller.lease.release()
    key = gate.keys.get(issued.key_id)
    assert key is not None
    assert await gate.admission.agent(key, mine.id) == mine
    assert isinstance(await gate.admission.agent(key, theirs.id), Rejection)


async def test_http_audio_requests_are_admitted_as_rest_requests_holding_a_slot_each(
    make_gate: Callable[..., Gate],
) -> None:
    gate = make_gate(max_http_audio_requests_per_key=2)
    issued = await gate.issue(scopes=(SCOPE_SPEECH,))
    for refused_as, code in (
        (UNKNOWN, "unauthorized"),
        (await gate.issue(scopes=(SCOPE_SESSION,)), "forbidden"),
    ):
        refused = await _audio(gate.admission, refused_as)
        assert isinstance(refused, Rejection) and refused.code == code
    first, second = [await _audio(gate.admission, issued) for _ in range(2)]
    assert isinstance(first, AudioRequest) and isinstance(second, AudioRequest)
    assert first.key.id == issued.key_id
    busy = await _audio(gate.admission, issued)
    assert isinstance(busy, Rejection)
    assert (busy.code, busy.kind.http_status, busy.retry_after) == (
        "concurrency_limit_exceeded",
        429,
        1.0,
    )
    other = await gate.issue(scopes=(SCOPE_SPEECH,))
    assert isinstance(await _audio(gate.admission, other), AudioRequest)
    await first.lease.release()
    assert isinstance(await _audio(gate.admission, issued), AudioRequest)
