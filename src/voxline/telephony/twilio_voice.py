"""Twilio Programmable Voice, through the ``twilio`` library: the webhook's signature, the
TwiML that streams a call to voxline or dials a person, and REST updates of a live call.

The media stream itself is not signed the way the webhook is, so the webhook hands it a
stream token, ``HMAC(auth token, CallSid)``, as a ``<Parameter>``: a stream is accepted only
for a call whose webhook Twilio signed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
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


def stream_token(auth_token: str, call_sid: str) -> str:
    digest = hmac.new(auth_token.encode(), f"stream:{call_sid}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def stream_token_valid(auth_token: str, call_sid: str, token: str) -> bool:
    return hmac.compare_digest(stream_token(auth_token, call_sid), token)


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
