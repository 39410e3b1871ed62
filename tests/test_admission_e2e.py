"""Every way into a real server refuses what the admission gate refuses, as its clients see
it: the socket (a secret key or a browser token) with an ``error`` event and a close code,
REST and the page's token endpoint with an HTTP error, a phone call (through Twilio) with a
close code. What each refusal says is the unit tests' (``test_admission.py``) business."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support import twilio_sim
from tests.support.caller import Caller
from tests.support.keys import revoke_key
from tests.support.server import OPEN_LIMITS, RunningServer, run_server
from tests.support.twilio_sim import FakeTwilioApi, TwilioStream
from voxline.auth.keys import KeyStore
from voxline.store.database import Database

ORIGIN = "https://app.example.com"
PUBLIC_HOST = "voxline.example.test"
VOICE_URL = f"https://{PUBLIC_HOST}/twilio/voice"
CONNECTS_PER_MINUTE_PER_KEY = 2
UNKNOWN_SECRET = "vx_test_not-a-real-key-but-long-enough-123456"
UNKNOWN_TOKEN = "vxt_not-a-real-token-but-long-enough-123456"

pytestmark = pytest.mark.e2e
#: A refused phone call is closed at once; one still open this much later was admitted.
ADMITTED_AFTER = 1.0


@dataclass(frozen=True)
class Outcome:
    #: The HTTP status, or the close code of a refused session or call; None for one going on.
    status: int | None
    #: The error code of a refusal.
    code: str | None = None
    retry_after: float | None = None


@dataclass
class Server:
    """A server whose page key and phone key are as one refusal needs them."""

    running: RunningServer
    page_key: str
    phone_key_id: str
    twilio: FakeTwilioApi
    #: Ends what the attempts admitted and left going.
    held: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


def _configured_keys(refusal: str, db: Database) -> tuple[str, str]:
    """The page key's secret and the phone key's id for ``refusal``."""
    keys = KeyStore(db)
    if refusal == "unknown":
        return UNKNOWN_SECRET, "key_00000000"
    if refusal in ("revoked", "scope"):
        scopes = ["calls:read"] if refusal == "scope" else ["omni:session"]
        key, secret = keys.create(env="live", scopes=scopes)
        if refusal == "revoked":
            keys.revoke(key.id)
        return secret, key.id
    # Each its own key, so that neither spends the other's connects.
    _, page_secret = keys.create(env="live", scopes=["omni:session"])
    phone, _ = keys.create(
        env="live", scopes=["omni:session"], concurrency=1 if refusal == "concurrency" else None
    )
    return page_secret, phone.id


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Server]]:
    """The server of each refusal, started when first needed."""
    started: dict[str, Server] = {}
    with ExitStack() as stack:
        twilio = stack.enter_context(FakeTwilioApi())

        def server(refusal: str) -> Server:
            if refusal not in started:
                data_dir = tmp_path_factory.mktemp(f"admission-{refusal}")
                with Database(data_dir / "voxline.db") as db:
                    page_key, phone_key_id = _configured_keys(refusal, db)
                env = {
                    **OPEN_LIMITS,
                    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": str(CONNECTS_PER_MINUTE_PER_KEY),
                    "VOXLINE_WEB_KEY": page_key,
                    "VOXLINE_PHONE_KEY_ID": phone_key_id,
                    "VOXLINE_TWILIO_ACCOUNT_SID": twilio_sim.ACCOUNT_SID,
                    "VOXLINE_TWILIO_AUTH_TOKEN": twilio_sim.AUTH_TOKEN,
                    "VOXLINE_TWILIO_PUBLIC_HOST": PUBLIC_HOST,
                    "VOXLINE_TWILIO_API_BASE_URL": twilio.url,
                }
                running = stack.enter_context(run_server(data_dir, env=env))
                started[refusal] = Server(running, page_key, phone_key_id, twilio)
            return started[refusal]

        yield server


def _http_outcome(response: httpx.Response) -> Outcome:
    if response.is_success:
        return Outcome(response.status_code)
    retry_after = response.headers.get("Retry-After")
    return Outcome(
        response.status_code,
        response.json()["error"]["code"],
        None if retry_after is None else float(retry_after),
    )


async def _first_of(caller: Caller, names: set[str], timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            for _, event in caller.got.events:
                if event["event"] in names:
                    return event
            await asyncio.sleep(0.01)


async def _socket(server: Server, credential: str, origin: str | None = None) -> Outcome:
    caller = await Caller.open(
        server.running.ws,
        subprotocols=["pyai.v1", f"pyai-key.{credential}"],
        **({} if origin is None else {"origin": origin}),
    )
    await caller.send_control({"type": "configure"})
    first = await _first_of(caller, {"hello", "error"})
    if first["event"] == "hello":
        server.held.append(caller.close)
        return Outcome(None)
    got = await caller.closed()
    return Outcome(got.close_code, first["code"], first.get("retry_after"))


async def _token(server: Server, token: str) -> Outcome:
    return await _socket(server, token, origin=ORIGIN)


async def _mint(server: Server, authorization: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.running.http) as client:
        return await client.post(
            "/v1/omni/sessions",
            json={"allowed_origins": [ORIGIN]},
            headers={"Authorization": authorization},
        )


async def _bearer(server: Server, secret: str) -> Outcome:
    return _http_outcome(await _mint(server, f"Bearer {secret}"))


async def _page(server: Server, _: str) -> Outcome:
    async with httpx.AsyncClient(base_url=server.running.http) as client:
        response = await client.post("/web/token", headers={"Origin": server.running.http})
    return _http_outcome(response)


async def _phone(server: Server, _: str) -> Outcome:
    call_sid = twilio_sim.new_call_sid()
    params = twilio_sim.call_params(call_sid)
    answer = await asyncio.to_thread(
        twilio_sim.post_webhook,
        server.running.http,
        VOICE_URL,
        params,
        twilio_sim.sign(VOICE_URL, params),
    )
    assert answer.status_code == 200, answer.text
    twiml = twilio_sim.parse_stream_twiml(answer.text)
    call = await TwilioStream.open(server.running.http, twiml, server.twilio, call_sid)
    try:
        await call.closed(timeout=ADMITTED_AFTER)
    except TimeoutError:
        server.held.append(call.stop)
        return Outcome(None)
    return Outcome(call.close_code, call.ws.close_reason)


DOORS: dict[str, Callable[[Server, str], Awaitable[Outcome]]] = {
    "socket": _socket,
    "token": _token,
    "bearer": _bearer,
    "page": _page,
    "phone": _phone,
}

# A browser token's own refusals (expired, other origin, in use) are test_browser_tokens.py's.
CASES = [
    ("socket", "unknown", 4401, "unauthorized"),
    ("socket", "revoked", 4401, "unauthorized"),
    ("socket", "scope", 4403, "forbidden"),
    ("socket", "rate", 4429, "rate_limit_exceeded"),
    ("socket", "concurrency", 4429, "concurrency_limit_exceeded"),
    ("token", "unknown", 4401, "unauthorized"),
    ("token", "revoked", 4401, "unauthorized"),
    ("bearer", "unknown", 401, "unauthorized"),
    ("bearer", "revoked", 401, "unauthorized"),
    ("bearer", "scope", 403, "forbidden"),
    ("bearer", "rate", 429, "rate_limit_exceeded"),
    ("page", "unknown", 500, "internal_error"),
    ("page", "revoked", 500, "internal_error"),
    ("page", "scope", 500, "internal_error"),
    ("page", "rate", 429, "rate_limit_exceeded"),
    ("phone", "unknown", 4401, "unauthorized"),
    ("phone", "revoked", 4401, "unauthorized"),
    ("phone", "scope", 4403, "forbidden"),
    ("phone", "rate", 4429, "rate_limit_exceeded"),
    ("phone", "concurrency", 4429, "concurrency_limit_exceeded"),
]


async def _credential(server: Server, door: str, refusal: str) -> str:
    """What the client presents: a secret key or a browser token, in the refusal's state.
    The page and the phone present none: their keys are the server's."""
    if door in ("page", "phone"):
        return ""
    if refusal == "unknown":
        return UNKNOWN_TOKEN if door == "token" else UNKNOWN_SECRET
    secret = server.running.create_key(
        scopes=("calls:read",) if refusal == "scope" else ("omni:session",),
        concurrency=1 if refusal == "concurrency" else None,
    )
    credential = secret
    if door == "token":
        minted = await _mint(server, f"Bearer {secret}")
        assert minted.status_code == 200, minted.text
        credential = minted.json()["token"]
    if refusal == "revoked":
        revoke_key(server.running.data_dir, secret)
    return credential


@pytest.mark.parametrize(
    ("door", "refusal", "status", "code"), CASES, ids=[f"{d}-{r}" for d, r, *_ in CASES]
)
async def test_every_way_in_refuses(
    servers: Callable[[str], Server], door: str, refusal: str, status: int, code: str
) -> None:
    server = servers(refusal)
    attempt = DOORS[door]
    credential = await _credential(server, door, refusal)
    try:
        admitted = {"rate": CONNECTS_PER_MINUTE_PER_KEY, "concurrency": 1}.get(refusal, 0)
        for _ in range(admitted):
            assert (await attempt(server, credential)).code is None
        outcome = await attempt(server, credential)
    finally:
        for end in server.held:
            await end()
        server.held.clear()
    assert (outcome.status, outcome.code) == (status, code)
    if refusal == "rate" and door != "phone":  # a phone has no one to tell when to retry
        assert outcome.retry_after is not None
        assert 1 <= outcome.retry_after <= 60 / CONNECTS_PER_MINUTE_PER_KEY
    log = server.running.log()
    for secret in (credential, server.page_key):
        assert not secret or secret not in log
