"""``GET /v1/voices`` and ``GET /v1/voices/{voice_id}``: the voices this server speaks in.

Any key may read them (a realtime key chooses its session's ``voice_id`` from them).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voxline.engines.voices import Voice, VoiceLibrary
from voxline.protocol.errors import Rejection
from voxline.server.issuing import error_response
from voxline.server.rest import bearer_key
from voxline.server.services import Services


def _described(voices: VoiceLibrary, voice: Voice) -> dict[str, Any]:
    return voice.describe(default=voice == voices.default)


def _matches(voice: Voice, gender: str | None, region: str | None) -> bool:
    """``region`` is a country (``US``) or a language (``en_US``, ``en-us``)."""
    if gender is not None and (voice.gender or "").casefold() != gender.casefold():
        return False
    if region is None:
        return True
    wanted = region.replace("-", "_").casefold()
    return wanted in {(voice.region or "").casefold(), (voice.language or "").casefold()}


async def list_voices(request: Request) -> Response:
    """The voices, the default first, filtered by ``?gender=`` and ``?region=``."""
    key = await bearer_key(request, None)
    if isinstance(key, Rejection):
        return error_response(key)
    voices: VoiceLibrary = request.app.state.services.voices
    gender = request.query_params.get("gender") or None
    region = request.query_params.get("region") or None
    data = [_described(voices, v) for v in voices if _matches(v, gender, region)]
    return JSONResponse({"object": "list", "data": data})


async def get_voice(request: Request) -> Response:
    key = await bearer_key(request, None)
    if isinstance(key, Rejection):
        return error_response(key)
    services: Services = request.app.state.services
    voice = services.voices.get(request.path_params["voice_id"])
    if voice is None:
        return error_response(Rejection("not_found", "no such voice", param="voice_id"))
    return JSONResponse(_described(services.voices, voice))


def voice_routes() -> list[Route]:
    return [Route("/v1/voices", list_voices), Route("/v1/voices/{voice_id}", get_voice)]
