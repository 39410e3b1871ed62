"""``POST /v1/audio/transcriptions``: a clip to text, on the recogniser calls use.

The clip is a multipart ``file``: a WAV (any sample format, rate and channels), FLAC or Ogg
file, or headerless audio named by its content type or file name (PCM16 little-endian at
``sample_rate``, default 24 kHz; G.711 µ-law or A-law at 8 kHz). It is decoded in pieces of
at most 28 s, each after every decode a call is waiting for, so that calls keep their
latency. ``vocabulary`` (comma-separated terms) steers spelling as a call's names do. The
clip's length counts toward the key's daily audio seconds. The request holds one of its
key's slots for the speech engines from before its upload is read until it is answered.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

import numpy as np
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from voxline.audio.files import RawEncoding, UnreadableAudio, read_audio_file, read_raw
from voxline.audio.pcm import Int16Array, to_float
from voxline.audio.resample import resample
from voxline.auth.keys import SCOPE_TRANSCRIPTION, ApiKey
from voxline.config import Settings
from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.rest import audio_route
from voxline.server.services import Services

PATH: Final = "/v1/audio/transcriptions"
MAX_UPLOAD_BYTES: Final = 25 * 1024 * 1024
"""The request body of this route (every other route's is 64 KiB), as OpenAI's."""
MAX_CLIP_SECONDS: Final = 300.0
"""About ten decodes of a worker's time: a longer recording belongs to a batch job."""
MAX_VOCABULARY_TERMS: Final = 32
MAX_TERM_CHARS: Final = 64
DEFAULT_RAW_RATE: Final = 24000
"""Headerless PCM16 without a rate is taken to be at the speech API's default rate."""
MODELS: Final = frozenset({"pyai-hear", "whisper-1"})
"""Model names accepted besides the recogniser's own: all are this server's recogniser."""
_ENGLISH: Final = re.compile(r"^(en([-_][a-z]{2})?|english)$", re.IGNORECASE)
_STT_RATE: Final = 16000
TRAILING_SILENCE_S: Final = 0.5
_G711_RATE: Final = 8000

#: Headerless audio by content type (``audio/L16;rate=16000``) or by file extension.
RAW_TYPES: Final[dict[str, RawEncoding]] = {
    "audio/pcm": "pcm16",
    "audio/l16": "pcm16",
    "audio/basic": "ulaw",
    "audio/pcmu": "ulaw",
    "audio/mulaw": "ulaw",
    "audio/x-mulaw": "ulaw",
    "audio/pcma": "alaw",
    "audio/alaw": "alaw",
    "audio/x-alaw-basic": "alaw",
}
RAW_EXTENSIONS: Final[dict[str, RawEncoding]] = {
    ".pcm": "pcm16",
    ".raw": "pcm16",
    ".ulaw": "ulaw",
    ".mulaw": "ulaw",
    ".alaw": "alaw",
}


@dataclass(frozen=True, slots=True)
class Clip:
    samples: Int16Array
    rate: int

    @property
    def seconds(self) -> float:
        return self.samples.size / self.rate


def model_name(settings: Settings) -> str:
    """The recogniser's model: the configured one, else the packaged tiny.en."""
    return settings.stt.model or "tiny.en"


def _invalid(message: str, param: str, code: str = "invalid_request") -> Rejection:
    return Rejection(code, message, param=param)


def raw_encoding(upload: UploadFile) -> tuple[RawEncoding | None, int | None]:
    """Whether the upload is headerless audio (by content type, else file extension), and
    the rate its content type gives (``;rate=``), if any."""
    media, *params = (upload.content_type or "").split(";")
    encoding = RAW_TYPES.get(media.strip().lower())
    if encoding is None:
        encoding = RAW_EXTENSIONS.get(PurePath(upload.filename or "").suffix.lower())
    rate = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "rate":
            rate = parse_decimal(value.strip(), 8000, 48000)
    return encoding, rate


def decode_clip(data: bytes, encoding: RawEncoding | None, rate: int | None) -> Clip:
    """The upload's audio: headerless as ``encoding`` says, else a file libsndfile reads."""
    if encoding is None:
        samples, file_rate = read_audio_file(data)
        return Clip(samples, file_rate)
    if encoding != "pcm16":
        return Clip(read_raw(data, encoding), _G711_RATE)
    return Clip(read_raw(data, encoding), rate or DEFAULT_RAW_RATE)


def vocabulary_terms(field: str) -> list[str]:
    """The terms of a ``vocabulary`` field: comma- or line-separated, bounded."""
    terms = [term.strip() for term in re.split(r"[,\n]", field)]
    return [term for term in terms if 0 < len(term) <= MAX_TERM_CHARS][:MAX_VOCABULARY_TERMS]


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value.strip() else None


async def transcribe_clip(request: Request, key: ApiKey) -> Response:
    services: Services = request.app.state.services
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return error_response(_invalid("send a multipart/form-data body with a file", "file"))
    try:
        async with request.form(max_files=1, max_fields=32, max_part_size=64 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return error_response(_invalid("a file (the audio) is required", "file"))
            data = await upload.read()
            encoding, content_rate = raw_encoding(upload)
            fields = {name: _field(form, name) for name in _FIELDS}
    except MultiPartException as error:
        return error_response(_invalid(f"malformed multipart body: {error}", "body"))
    return await _transcribe(services, key, data, encoding, content_rate, fields)


_FIELDS: Final = ("model", "language", "vocabulary", "response_format", "sample_rate")


async def _transcribe(
    services: Services,
    key: ApiKey,
    data: bytes,
    encoding: RawEncoding | None,
    content_rate: int | None,
    fields: dict[str, str | None],
) -> Response:
    response_format = fields["response_format"] or "json"
    if response_format not in ("json", "text"):
        return error_response(
            _invalid(
                "response_format must be json or text", "response_format", "unsupported_format"
            )
        )
    language = fields["language"]
    if language is not None and not _ENGLISH.match(language):
        return error_response(_invalid("this server transcribes English only", "language"))
    model = fields["model"]
    own_model = model_name(services.settings)
    if model is not None and model not in MODELS | {own_model}:
        return error_response(
            _invalid(f"model must be one of {', '.join(sorted(MODELS | {own_model}))}", "model")
        )
    rate = content_rate
    if fields["sample_rate"] is not None:
        rate = parse_decimal(fields["sample_rate"], 8000, 48000)
        if rate is None:
            return error_response(_invalid("sample_rate must be 8000-48000", "sample_rate"))
    try:
        clip = await asyncio.to_thread(decode_clip, data, encoding, rate)
    except UnreadableAudio as error:
        return error_response(_invalid(f"the file is not audio this server reads: {error}", "file"))
    if clip.seconds > MAX_CLIP_SECONDS:
        return error_response(
            _invalid(f"the clip is over {MAX_CLIP_SECONDS:g} seconds long", "file")
        )
    spent = await services.limits.check_daily_cap(key)
    if spent is not None:
        return error_response(spent)
    vocabulary = vocabulary_terms(fields["vocabulary"] or "")
    text = await _recognise(services, clip, vocabulary)
    await services.limits.add_audio(key, clip.seconds)
    if response_format == "text":
        return PlainTextResponse(text)
    return JSONResponse({"text": text, "language": "en", "duration": round(clip.seconds, 3)})


async def _recognise(services: Services, clip: Clip, vocabulary: list[str]) -> str:
    # faster-whisper and the knowledge search load with the first clip, not with the server
    from voxline.engines.stt import batch_chunks
    from voxline.engines.stt_prompt import build_prompt

    prompt = build_prompt(vocabulary=vocabulary)
    audio = to_float(await asyncio.to_thread(resample, clip.samples, clip.rate, _STT_RATE))
    # A caller's turn reaches the recogniser with the pause that ended it; a clip may stop
    # on its last syllable, and Whisper (beam search most of all) then drops its last words.
    audio = np.concatenate([audio, np.zeros(int(TRAILING_SILENCE_S * _STT_RATE), audio.dtype)])
    texts = []
    for chunk in batch_chunks(audio):
        transcript = await services.stt.transcribe(chunk, prompt=prompt, batch=True)
        texts.append(transcript.text)
    return " ".join(text for text in texts if text)


def transcription_routes() -> list[Route]:
    return [audio_route(PATH, transcribe_clip, SCOPE_TRANSCRIPTION)]
