"""A kb_endpoint server for tests, answering in every response shape docs/protocol.md allows
(the path names the shape)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.http_server import ThreadedServer

TOKEN = "kb-secret-token"
PASSAGE_A = "We are open nine to five on weekdays."
PASSAGE_B = "Parking is free behind the building."


async def _shape(request: Request) -> Response:
    request.app.state.received.append((dict(request.headers), await request.json()))
    shape = request.path_params["shape"]
    if shape == "slow":
        await asyncio.sleep(1.0)
    bodies: dict[str, Any] = {
        "context": {"context": PASSAGE_A},
        "results-content": {
            "results": [{"content": PASSAGE_A, "score": 0.9}, {"content": PASSAGE_B}]
        },
        "results-text": {"results": [{"text": PASSAGE_A}, {"text": PASSAGE_B}]},
        "passages-strings": {"passages": [PASSAGE_A, PASSAGE_B]},
        "passages-objects": {"passages": [{"content": PASSAGE_A}, {"text": PASSAGE_B}]},
        "empty": {"results": []},
        "unknown": {"answer_html": "<p>hi</p>"},
        "slow": {"context": PASSAGE_A},
        "list": [PASSAGE_A, {"text": PASSAGE_B}],
    }
    if shape == "plain":
        return PlainTextResponse(f"  {PASSAGE_A}\n")
    if shape == "error":
        return PlainTextResponse("boom", status_code=500)
    if shape == "badjson":
        return Response('{"context": "unterminated', media_type="application/json")
    if shape == "auth":
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        return JSONResponse({"context": PASSAGE_A})
    return JSONResponse(bodies[shape])


class KbServer:
    def __init__(self) -> None:
        self.app = Starlette(routes=[Route("/kb/{shape}", _shape, methods=["POST"])])
        self.app.state.received = []
        self._server = ThreadedServer(self.app, name="kb-server")

    @property
    def received(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        received: list[tuple[dict[str, str], dict[str, Any]]] = self.app.state.received
        return received

    def url(self, shape: str) -> str:
        return f"{self._server.url}/kb/{shape}"

    def __enter__(self) -> KbServer:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__()
