"""``POST /v1/audio/speech``: text to speech, from the voices and speech caches calls use.

The text is spoken piece by piece as calls speak a reply (a short first piece, then
sentences), and each piece is sent as soon as it is synthesised, so the first audio leaves
after the first piece rather than the whole text. A WAV asked for with ``stream: true`` has
the sizes of a stream in its header ("to the end"); without, it is sent whole with its exact
sizes. PCM and G.711 have no header and always stream. The audio counts toward the key's
daily audio seconds. Each piece waits for the sentences live calls have queued, and the
request holds one of its key's slots for the speech engines until its last byte is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from voxline.audio.files import wav_header
from voxline.audio.g711 import alaw_encode, ulaw_encode
from voxline.audio.pcm import Int16Array
from voxline.audio.resample import resample
from voxline.auth.keys import SCOPE_SPEECH, ApiKey
from voxline.engines.sentences import SentenceSplitter
from voxline.engines.voices import speak
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.rest import audio_route
from voxline.server.services import Services

if TYPE_CHECKING:
    from voxline.engines.tts import Synthesizer

log = logging.getLogger(__name__)

MAX_INPUT_CHARS: Final = 4096
"""Characters of text per request (as OpenAI's speech API): a minute or so of speech."""
SAMPLE_RATES: Final = (8000, 16000, 24000, 48000)
DEFAULT_SAMPLE_RATE: Final = 24000
G711_RATE: Final = 8000
FIRST_PIECE_CHARS: Final = 40
"""As a call's replies: the first audio comes after a short piece, not a long sentence."""
MODELS: Final = frozenset({"pyai-speak", "tts-1", "tts-1-hd", "piper"})
"""Model names accepted; all are this server's one speech engine."""
_RESERVED: Final = ("speed", "seed", "temperature")
_UNSUPPORTED_FORMATS: Final = frozenset({"mp3", "opus", "aac", "flac"})


def _pcm16(samples: Int16Array) -> bytes:
    return samples.astype("<i2").tobytes()


#: Each format's content type and encoder of PCM16 samples.
FORMATS: Final[dict[str, tuple[str, Callable[[Int16Array], bytes]]]] = {
    "wav": ("audio/wav", _pcm16),
    "pcm": ("audio/pcm", _pcm16),
    "g711_ulaw": ("audio/basic", ulaw_encode),
    "g711_alaw": ("audio/basic", alaw_encode),
}


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    text: str
    voice: str | None
    response_format: str
    sample_rate: int
    stream: bool


def _invalid(message: str, param: str, code: str = "invalid_request") -> Rejection:
    return Rejection(code, message, param=param)


def parse_speech_request(payload: Any) -> SpeechRequest | Rejection:
    """A validated request body, or the error to answer it with."""
    if not isinstance(payload, dict):
        return _invalid("the body must be a JSON object", "body")
    for name in _RESERVED:
        if payload.get(name) is not None:
            return _invalid(f"{name} is not supported", name, "unsupported_parameter")
    text = payload.get("input")
    if not isinstance(text, str) or not text.strip():
        return _invalid("input must be a non-empty string", "input")
    if len(text) > MAX_INPUT_CHARS:
        return _invalid(f"input must be at most {MAX_INPUT_CHARS} characters", "input")
    model = payload.get("model", "pyai-speak")
    if model not in MODELS:
        return _invalid(f"model must be one of {', '.join(sorted(MODELS))}", "model")
    voice = payload.get("voice")
    if voice is not None and not isinstance(voice, str):
        return _invalid("voice must be a voice id (GET /v1/voices)", "voice")
    fmt = payload.get("response_format") or "wav"
    if fmt not in FORMATS:
        supported = ", ".join(FORMATS)
        message = (
            f"{fmt} is not produced by this server; use one of {supported}"
            if fmt in _UNSUPPORTED_FORMATS
            else f"response_format must be one of {supported}"
        )
        return _invalid(message, "response_format", "unsupported_format")
    rate = payload.get("sample_rate", DEFAULT_SAMPLE_RATE)
    if isinstance(rate, bool) or rate not in SAMPLE_RATES:
        rates = ", ".join(map(str, SAMPLE_RATES))
        return _invalid(f"sample_rate must be one of {rates}", "sample_rate")
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        return _invalid("stream must be true or false", "stream")
    if fmt.startswith("g711_"):
        rate = G711_RATE
    return SpeechRequest(text.strip(), voice or None, fmt, int(rate), stream)


def pieces(text: str) -> list[str]:
    """``text`` in the pieces it is spoken in."""
    splitter = SentenceSplitter(first_chunk_chars=FIRST_PIECE_CHARS)
    return [*splitter.feed(text), *splitter.flush()]


async def synthesize_speech(request: Request, key: ApiKey) -> Response:
    services: Services = request.app.state.services
    body = await request.body()  # bounded by BodyLimit
    try:
        spec = parse_speech_request(json.loads(body or b"null"))
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, absurd nesting or numbers
        spec = _invalid("the body must be JSON", "body")
    if isinstance(spec, Rejection):
        return error_response(spec)
    voice = services.voices.get(spec.voice) if spec.voice else services.voices.default
    if voice is None:
        return error_response(_invalid("no such voice; GET /v1/voices lists them", "voice"))
    spent = await services.limits.check_daily_cap(key)
    if spent is not None:
        return error_response(spent)
    try:
        tts = await services.voices.synthesizer(voice.id)
    except Exception:
        log.exception("could not load voice %s", voice.id)
        return error_response(Rejection("internal_error", f"voice {voice.id} failed to load"))
    content_type, _ = FORMATS[spec.response_format]
    headers = {"X-Sample-Rate": str(spec.sample_rate), "X-Voice-Id": voice.id}
    audio = _audio(services, key, tts, spec)
    if spec.response_format == "wav" and not spec.stream:
        data = b"".join([chunk async for chunk in audio])
        return Response(wav_header(spec.sample_rate, len(data)) + data, 200, headers, content_type)
    if spec.response_format == "wav":
        audio = _after(wav_header(spec.sample_rate), audio)
    return StreamingResponse(audio, 200, headers, content_type)


async def _audio(
    services: Services, key: ApiKey, tts: Synthesizer, spec: SpeechRequest
) -> AsyncIterator[bytes]:
    """The encoded audio of each piece of the text as it is synthesised, counted toward the
    key's audio."""
    _, encode = FORMATS[spec.response_format]
    for piece in pieces(spec.text):
        samples = resample(await speak(tts, piece, batch=True), tts.sample_rate, spec.sample_rate)
        await services.limits.add_audio(key, samples.size / spec.sample_rate)
        if samples.size:
            yield encode(samples)


async def _after(head: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` with ``head`` sent with the first of them, not before it."""
    async for chunk in chunks:
        yield head + chunk
        head = b""
    if head:
        yield head


def speech_routes() -> list[Route]:
    return [audio_route("/v1/audio/speech", synthesize_speech, SCOPE_SPEECH)]
