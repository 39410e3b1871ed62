"""Phone calls through Twilio: the voice webhook (``POST /twilio/voice``) and the
bidirectional Media Stream it connects the call to (``/twilio/media``).

Caller audio arrives as 20 ms of µ-law at 8 kHz a message, which the session takes as
8 kHz PCM16; agent audio goes back the same way, each 20 ms chunk followed by a ``mark``
named for the samples sent so far. Twilio echoes a mark once the audio before it has played,
so the session's idea of what the caller heard never runs ahead of the phone. Barge-in sends
``clear``, which drops whatever Twilio still holds.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.websockets import WebSocket

from voxline.audio.dtmf import dtmf_tones
from voxline.audio.g711 import ulaw_decode, ulaw_encode
from voxline.audio.pcm import pcm16_samples
from voxline.config import TwilioSettings
from voxline.protocol.client_frames import DTMF_DIGITS, Dtmf
from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import CloseCode, Rejection
from voxline.session.agent import SessionInfo
from voxline.session.session import Session
from voxline.telephony import twilio_media
from voxline.telephony.twilio_voice import (
    SIGNATURE_HEADER,
    TOKEN_PARAMETER,
    TwilioCalls,
    dial_twiml,
    reject_twiml,
    signature_valid,
    stream_token,
    stream_token_valid,
)
from voxline.telephony.twilio_voice import stream_twiml as twiml_for_stream
from voxline.transports.call import configure, run_call, until_ended
from voxline.transports.phone import PhoneLine, start_configure
from voxline.transports.services import CallServices

log = logging.getLogger(__name__)

RATE = 8000
START_TIMEOUT = 10.0


def _not_configured() -> Response:
    return JSONResponse(
        Rejection("forbidden", "Twilio is not configured on this server").http_body(), 403
    )


def _forbidden(message: str) -> Response:
    return JSONResponse(Rejection("forbidden", message).http_body(), 403)


def _twiml(twiml: str) -> Response:
    return Response(twiml, media_type="text/xml")


async def voice_webhook(request: Request) -> Response:
    """Answer a call: check Twilio signed the request and that the stored agent it names
    (the URL's ``?agent_id=…``, else the phone calls' own) is the phone key's owner's, then
    stream the call here. A call that no agent would serve is rejected unanswered rather
    than answered into a stream that is then refused."""
    services: CallServices = request.app.state.services
    settings = services.settings.twilio
    if settings.auth_token is None or settings.public_host is None:
        return _not_configured()
    body = await request.body()  # the server bounds every request body
    params = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    # Twilio signs the URL it was told to call: the public one, not the proxy's inner one.
    url = f"https://{settings.public_host}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not signature_valid(settings.auth_token, url, params, signature):
        services.metrics.rejections.labels("twilio_signature").inc()
        return _forbidden(f"missing or invalid {SIGNATURE_HEADER}")
    call_sid = params.get("CallSid", "")
    if not call_sid:
        return _forbidden("no CallSid")
    # The webhook's own URL may name the number's agent (?agent_id=…): Twilio signed it.
    named = request.query_params.get("agent_id") or None
    phone = services.settings.phone
    agent_id = named or phone.agent_id
    if agent_id is not None:
        agent = await services.admission.phone_agent(phone.key_id, agent_id)
        if isinstance(agent, Rejection):
            log.warning("twilio call %s refused: %s", call_sid, agent.message)
            services.metrics.rejections.labels(agent.code).inc()
            return _twiml(reject_twiml(busy=agent.code == "service_unavailable"))
    parameters = {
        TOKEN_PARAMETER: stream_token(settings.auth_token, call_sid, named),
        "from": params.get("From", ""),
        "to": params.get("To", ""),
    }
    if named is not None:
        parameters["agent_id"] = named
    return _twiml(twiml_for_stream(f"wss://{settings.public_host}/twilio/media", parameters))


class TwilioLine(PhoneLine):
    """One Media Stream as the session's ``Outbound``, acting on the call through REST."""

    def __init__(
        self, websocket: WebSocket, stream: twilio_media.Start, settings: TwilioSettings
    ) -> None:
        super().__init__(websocket)
        self.stream = stream
        self._settings = settings
        self._sent = 0  # agent samples sent, which the marks count

    async def send_audio(self, pcm: bytes) -> None:
        ulaw = ulaw_encode(pcm16_samples(pcm))
        self._sent += len(ulaw)
        sid = self.stream.stream_sid
        await self.send(twilio_media.media(sid, ulaw))
        await self.send(twilio_media.mark(sid, str(self._sent)))

    async def clear_audio(self) -> None:
        await self.send(twilio_media.clear(self.stream.stream_sid))

    def marked(self, name: str) -> None:
        samples = parse_decimal(name, 0, self._sent)
        if samples is not None and self.session is not None:
            self.session.far_end_played(samples)

    async def _transfer_call(self) -> None:
        number = self._settings.transfer_number
        if number is None:
            raise RuntimeError("no transfer number configured (VOXLINE_TWILIO_TRANSFER_NUMBER)")
        await self._calls().redirect(self.stream.call_sid, dial_twiml(number))

    async def _hang_up_call(self) -> None:
        await self._calls().hang_up(self.stream.call_sid)

    async def _send_digits(self, digits: str) -> None:
        """In band: a Media Stream carries no digits of its own. Unmarked, so the marks keep
        counting agent speech only."""
        tones = dtmf_tones("".join(d for d in digits.upper() if d in DTMF_DIGITS), RATE)
        await self.send(twilio_media.media(self.stream.stream_sid, ulaw_encode(tones)))

    def _calls(self) -> TwilioCalls:
        settings = self._settings
        if settings.account_sid is None or settings.auth_token is None:
            raise RuntimeError("Twilio account SID and auth token are not configured")
        return TwilioCalls(
            settings.account_sid, settings.auth_token, base_url=settings.api_base_url
        )


async def _stream_start(websocket: WebSocket) -> twilio_media.Start | None:
    """Skip ``connected``; the stream's ``start``, or None if the socket closed first."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is not None and isinstance(parsed := twilio_media.parse(text), twilio_media.Start):
            return parsed


async def media_stream(websocket: WebSocket) -> None:
    services: CallServices = websocket.app.state.services
    settings = services.settings
    await websocket.accept()
    try:
        async with asyncio.timeout(START_TIMEOUT):
            start = await _stream_start(websocket)
    except TimeoutError:
        start = None
    if start is None:
        await websocket.close(CloseCode.BAD_REQUEST, "no start message")
        return
    token = settings.twilio.auth_token
    # The token covers the agent the webhook named: a stream may not name another.
    named = start.parameters.get("agent_id") or None
    if token is None or not stream_token_valid(
        token, start.call_sid, start.parameters.get(TOKEN_PARAMETER, ""), named
    ):
        services.metrics.rejections.labels("unauthorized").inc()
        await websocket.close(CloseCode.UNAUTHORIZED, "unauthorized")
        return
    address = websocket.client.host if websocket.client else "unknown"
    caller = await services.admission.phone(
        settings.phone.key_id, address=address, agent_id=named or settings.phone.agent_id
    )
    if isinstance(caller, Rejection):
        log.warning("twilio call %s refused: %s", start.call_sid, caller.message)
        services.metrics.rejections.labels(caller.code).inc()
        await websocket.close(caller.kind.close_code, caller.close_reason())
        return
    line = TwilioLine(websocket, start, settings.twilio)
    info = SessionInfo(
        call_id=f"call_{uuid.uuid4().hex}",
        label=settings.phone.label or start.parameters.get("to") or None,
        in_rate=RATE,
        out_rate=RATE,
    )

    async def converse(session: Session) -> None:
        line.session = session
        await configure(services, session, caller, start_configure(settings, RATE))
        await until_ended(session, _read(line, session))

    await run_call(services, line, caller, info, transport="twilio", converse=converse)


async def _read(line: TwilioLine, session: Session) -> None:
    while (data := await line.receive()) is not None:
        if not isinstance(data, str):
            continue
        match twilio_media.parse(data):
            case twilio_media.Media(payload=payload):
                session.receive_audio(ulaw_decode(payload).tobytes())
            case twilio_media.Dtmf(digit=digit) if digit.upper() in DTMF_DIGITS:
                await session.receive(Dtmf(digit.upper()))
            case twilio_media.Mark(name=name):
                line.marked(name)
            case twilio_media.Stop():
                if line.close_code is None:
                    line.close_code, line.close_reason = CloseCode.NORMAL, "caller_hung_up"
                return
