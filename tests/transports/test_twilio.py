"""Twilio's voice webhook without a server process: a call whose agent (the webhook URL's
``?agent_id=…``, else the phone calls' own) is not the phone key's owner's is rejected
unanswered, and the stream token of one that is answered covers the agent it names. The
webhook runs in the ASGI app it is mounted in, on a real key and agent store and the
admission gate, with the metrics a server counts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests.support import twilio_sim
from voxline.admission import Admission
from voxline.auth.keys import SCOPE_SESSION, KeyStore
from voxline.auth.tokens import BrowserTokens
from voxline.config import LimitSettings, Settings
from voxline.limits.policy import LimitPolicy
from voxline.protocol.agent_profile import AgentProfile
from voxline.server.metrics import Metrics
from voxline.state.memory import MemoryBackend
from voxline.store.agents import AgentStore
from voxline.store.database import Database, DatabaseUnavailable
from voxline.telephony.twilio_voice import stream_token
from voxline.transports.twilio import voice_webhook

PUBLIC_HOST = "voxline.example.test"
VOICE_URL = f"https://{PUBLIC_HOST}/twilio/voice"
OWNER = "acme"
UNKNOWN_AGENT = "agent_" + "0" * 24


class Agents(AgentStore):
    """The agent store, or one whose database cannot be reached (``away``)."""

    away = False

    def get(self, owner: str, agent_id: str) -> AgentProfile | None:
        if self.away:
            raise DatabaseUnavailable("down")
        return super().get(owner, agent_id)


@dataclass
class Webhook:
    """What the webhook uses of a server's services, and what a test arranges in them."""

    settings: Settings
    metrics: Metrics
    admission: Admission
    agents: Agents
    mine: str  # an agent of the phone key's owner
    theirs: str  # another owner's

    async def call(self, agent_id: str | None = None) -> tuple[str, httpx.Response]:
        """A signed webhook of a new call to the number whose URL names ``agent_id``."""
        url = VOICE_URL if agent_id is None else f"{VOICE_URL}?agent_id={agent_id}"
        call_sid = twilio_sim.new_call_sid()
        params = twilio_sim.call_params(call_sid)
        app = Starlette(routes=[Route("/twilio/voice", voice_webhook, methods=["POST"])])
        app.state.services = self
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            response = await client.post(
                url.removeprefix(f"https://{PUBLIC_HOST}"),
                data=params,
                headers={"X-Twilio-Signature": twilio_sim.sign(url, params)},
            )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/xml")
        return call_sid, response

    def refusals(self, code: str) -> float:
        value = self.metrics.registry.get_sample_value("voxline_rejections_total", {"code": code})
        return value or 0.0


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[Webhook]:
    """A phone key of ``OWNER``, an agent of its and one of another owner's; no agent of
    the phone calls' own (``settings.phone.agent_id``) until a test sets one."""
    with Database(tmp_path / "voxline.db") as db:
        keys, backend, agents = KeyStore(db), MemoryBackend(), Agents(db)
        key, _ = keys.create(env="live", scopes=[SCOPE_SESSION], owner=OWNER)
        settings = Settings(
            twilio={"auth_token": twilio_sim.AUTH_TOKEN, "public_host": PUBLIC_HOST},
            phone={"key_id": key.id},
        )
        limits = LimitPolicy(backend, LimitSettings())
        yield Webhook(
            settings,
            Metrics("test"),
            Admission(keys, BrowserTokens(backend), limits, agents),
            agents,
            mine=agents.create(OWNER, {"name": "Desk"}).id,
            theirs=agents.create("globex", {"name": "Theirs"}).id,
        )


def _rejected(response: httpx.Response, reason: str = "") -> None:
    """The call is rejected, unanswered: ``<Reject>`` and nothing else, no stream."""
    attribute = f' reason="{reason}"' if reason else ""
    assert response.text == (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Reject{attribute} /></Response>'
    )


def _stream(response: httpx.Response) -> twilio_sim.StreamTwiml:
    twiml = twilio_sim.parse_stream_twiml(response.text)
    assert twiml.url == f"wss://{PUBLIC_HOST}/twilio/media"
    return twiml


async def test_a_call_naming_the_phone_key_owners_agent_streams_with_a_token_for_it(
    webhook: Webhook,
) -> None:
    call_sid, response = await webhook.call(webhook.mine)
    twiml = _stream(response)
    assert twiml.parameters["agent_id"] == webhook.mine
    token = twiml.parameters["voxline_token"]
    assert token == stream_token(twilio_sim.AUTH_TOKEN, call_sid, webhook.mine)
    assert token != stream_token(twilio_sim.AUTH_TOKEN, call_sid)


async def test_a_call_naming_no_agent_streams_as_it_always_did(webhook: Webhook) -> None:
    call_sid, response = await webhook.call()
    twiml = _stream(response)
    assert "agent_id" not in twiml.parameters
    assert twiml.parameters["voxline_token"] == stream_token(twilio_sim.AUTH_TOKEN, call_sid)


@pytest.mark.parametrize("whose", ["unknown", "another owner's"])
async def test_a_call_naming_an_agent_the_phone_key_may_not_use_is_rejected_unanswered(
    webhook: Webhook, whose: str, caplog: pytest.LogCaptureFixture
) -> None:
    agent_id = UNKNOWN_AGENT if whose == "unknown" else webhook.theirs
    with caplog.at_level(logging.WARNING, logger="voxline.transports.twilio"):
        call_sid, response = await webhook.call(agent_id)
    _rejected(response)
    assert webhook.refusals("invalid_agent_id") == 1
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith(f"twilio call {call_sid} refused: no agent")


async def test_the_phone_calls_own_agent_is_checked_when_the_url_names_none(
    webhook: Webhook,
) -> None:
    webhook.settings.phone.agent_id = UNKNOWN_AGENT
    _, response = await webhook.call()
    _rejected(response)
    assert webhook.refusals("invalid_agent_id") == 1
    # The URL's own agent goes before it.
    _, response = await webhook.call(webhook.mine)
    assert _stream(response).parameters["agent_id"] == webhook.mine

    webhook.settings.phone.agent_id = webhook.mine
    call_sid, response = await webhook.call()
    twiml = _stream(response)
    # The stream falls back on the phone calls' agent itself: the token names none.
    assert "agent_id" not in twiml.parameters
    assert twiml.parameters["voxline_token"] == stream_token(twilio_sim.AUTH_TOKEN, call_sid)


async def test_an_agent_named_without_a_usable_phone_key_is_rejected(webhook: Webhook) -> None:
    webhook.settings.phone.key_id = "key_00000000"
    _, response = await webhook.call(webhook.mine)
    _rejected(response)
    assert webhook.refusals("unauthorized") == 1


async def test_an_agent_that_cannot_be_looked_up_now_is_busy(webhook: Webhook) -> None:
    webhook.agents.away = True
    _, response = await webhook.call(webhook.mine)
    _rejected(response, reason="busy")
    assert webhook.refusals("service_unavailable") == 1
    webhook.agents.away = False
    _, response = await webhook.call(webhook.mine)
    assert _stream(response).parameters["agent_id"] == webhook.mine
