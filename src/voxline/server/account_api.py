"""``GET /v1/me`` (the calling key: scopes, limits, today's usage) and ``GET /v1/models``
(the engines this server runs). Any key may read both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voxline.config import Settings
from voxline.protocol.errors import Rejection
from voxline.server import speech_api, transcription_api
from voxline.server.issuing import error_response
from voxline.server.rest import bearer_key
from voxline.server.services import Services


async def me(request: Request) -> Response:
    services: Services = request.app.state.services
    key = await bearer_key(request, None)
    if isinstance(key, Rejection):
        return error_response(key)
    limits = services.settings.limits
    concurrency = key.concurrency if key.concurrency is not None else limits.default_concurrency
    return JSONResponse(
        {
            "object": "key",
            "id": key.id,
            "key_id": key.id,
            "label": key.label,
            "env": key.env,
            "environment": key.env,
            "prefix": key.prefix,
            "scopes": sorted(key.scopes),
            "created_at": int(key.created_at),
            "limits": {
                "concurrent_sessions": concurrency,
                "daily_audio_seconds": services.limits.daily_cap(key),
                "connects_per_minute": limits.connects_per_minute_per_key,
                "concurrent_audio_requests": limits.max_http_audio_requests_per_key,
            },
            "usage": {
                "date": datetime.now(UTC).date().isoformat(),
                "audio_seconds": round(await services.limits.usage_today(key), 3),
            },
        }
    )


def _model(model_id: str, kind: str, engine: str, **details: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "owned_by": "voxline", "type": kind,
            "engine": engine, **details}  # fmt: skip


def server_models(settings: Settings, voices: list[str]) -> list[dict[str, Any]]:
    """The recogniser, the speech engine and the brain, with the names each answers to."""
    stt, tts, llm = settings.stt, settings.tts, settings.llm
    return [
        _model(
            transcription_api.model_name(settings),
            "stt",
            "openai-compatible" if stt.url else "faster-whisper",
            aliases=sorted(transcription_api.MODELS),
            languages=["en"],
        ),
        _model(
            "piper" if tts.url is None else "tts-1",
            "tts",
            "openai-compatible" if tts.url else "piper",
            aliases=sorted(speech_api.MODELS - {"piper"}),
            voices=voices,
        ),
        _model(
            llm.model if llm.url else "knowledge-responder",
            "llm",
            "openai-compatible" if llm.url else "knowledge",
        ),
    ]


async def models(request: Request) -> Response:
    services: Services = request.app.state.services
    key = await bearer_key(request, None)
    if isinstance(key, Rejection):
        return error_response(key)
    voices = [voice.id for voice in services.voices]
    return JSONResponse({"object": "list", "data": server_models(services.settings, voices)})


def account_routes() -> list[Route]:
    return [Route("/v1/me", me), Route("/v1/models", models)]
