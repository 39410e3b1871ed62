"""Twilio Programmable Voice, through the ``twilio`` library: the webhook's signature, the
TwiML that streams a call to voxline or dials a person, and REST updates of a live call.

The media stream itself is not signed the way the webhook is, so the webhook hands it a
stream token as a ``<Parameter>``: an HMAC keyed with the auth token of the CallSid and of
the stored agent the webhook's URL named, if it named one. A stream is accepted only for a
call whose webhook Twilio signed, and only with the agent that webhook named: a token for
one call names no other agent, and a stream naming none has the token it always had.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

# The library logs every REST request and its headers at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

SIGNATURE_HEADER = "X-Twilio-Signature"
TOKEN_PARAMETER = "voxline_token"


def signature_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Whether ``signature`` is Twilio's for a POST of ``params`` to ``url``."""
    valid: bool = RequestValidator(auth_token).validate(url, dict(params), signature)
    return valid


def stream_token(auth_token: str, call_sid: str, agent_id: str | None = None) -> str:
    """The token of the stream of ``call_sid``, naming ``agent_id`` if given. Signed
    messages of the two forms cannot coincide (one starts ``stream:``, the other ``[``),
    and the JSON list keeps the CallSid and the agent apart whatever they hold."""
    message = (
        f"stream:{call_sid}"
        if agent_id is None
        else json.dumps(["stream", call_sid, agent_id], separators=(",", ":"))
    )
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def stream_token_valid(
    auth_token: str, call_sid: str, token: str, agent_id: str | None = None
) -> bool:
    """Whether ``token`` is the webhook's for ``call_sid`` and the agent the stream names."""
    return hmac.compare_digest(stream_token(auth_token, call_sid, agent_id), token)


def stream_twiml(url: str, parameters: Mapping[str, str]) -> str:
    """``<Connect><Stream url=…>`` with a ``<Parameter>`` per entry: a bidirectional stream."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    twiml: str = response.to_xml()
    return twiml


def reject_twiml(*, busy: bool = False) -> str:
    """``<Reject>``: the call is not answered (nor billed), the caller hearing the carrier's
    not-in-service response, or a busy signal if ``busy`` (worth calling again)."""
    response = VoiceResponse()
    response.reject(reason="busy" if busy else None)
    twiml: str = response.to_xml()
    return twiml


def dial_twiml(number: str) -> str:
    response = VoiceResponse()
    response.append(Dial(number))
    twiml: str = response.to_xml()
    return twiml


class _BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The library's HTTP client, sending to another base URL than Twilio's own."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=10.0)
        self._base = urlsplit(base_url)

    def request(self, method: str, url: str, **kwargs: object) -> object:
        parts = urlsplit(url)
        rebased = urlunsplit((self._base.scheme, self._base.netloc, *parts[2:]))
        return super().request(method, rebased, **kwargs)


class TwilioCalls:
    """REST updates of live calls; each runs in a worker thread, off the event loop."""

    def __init__(self, account_sid: str, auth_token: str, *, base_url: str) -> None:
        self._client = Client(account_sid, auth_token, http_client=_BaseUrlHttpClient(base_url))

    async def redirect(self, call_sid: str, twiml: str) -> None:
        """Replace what the call is doing (its media stream ends) with ``twiml``."""
        await asyncio.to_thread(lambda: self._client.calls(call_sid).update(twiml=twiml))

    async def hang_up(self, call_sid: str) -> None:
        await asyncio.to_thread(lambda: self._client.calls(call_sid).update(status="completed"))
