"""A real server's API as its clients use it: bearer requests, the error envelope, Prometheus
samples, browser tokens minted over HTTP then presented at the socket from an origin, and
speech requests, streamed or whole."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.caller import Caller
from tests.support.server import RunningServer

ORIGIN = "https://app.example.com"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(server: RunningServer, path: str, key: str | None = None) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.http) as client:
        return await client.get(path, headers=headers)


async def scrape(server: RunningServer) -> Samples:
    """The server's metrics, by name and labels but for the ``node`` label, which every
    sample must carry."""
    response = await get(server, "/metrics")
    assert response.status_code == 200
    # The Prometheus text exposition format, whichever version the client library writes.
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = dict(sample.labels)
            assert labels.pop("node", None), f"{sample} has no node label"
            samples[sample.name, frozenset(labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def mint(
    server: RunningServer,
    key: str | None,
    body: Any = None,
    *,
    content: bytes | None = None,
) -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    if body is None and content is None:
        body = {"allowed_origins": [ORIGIN]}
    async with httpx.AsyncClient(base_url=server.http) as client:
        if content is not None:
            headers["Content-Type"] = "application/json"
            return await client.post("/v1/omni/sessions", content=content, headers=headers)
        return await client.post("/v1/omni/sessions", json=body, headers=headers)


async def mint_token(server: RunningServer, key: str, **body: Any) -> dict[str, Any]:
    response = await mint(server, key, {"allowed_origins": [ORIGIN], **body})
    assert response.status_code == 200, response.text
    minted: dict[str, Any] = response.json()
    return minted


def assert_envelope(
    response: httpx.Response, status: int, code: str, error_type: str, param: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert isinstance(error["message"], str) and error["message"]
    assert (error["type"], error["code"], error["param"]) == (error_type, code, param)


async def open_with_token(server: RunningServer, token: str, origin: str | None = ORIGIN) -> Caller:
    kwargs: dict[str, Any] = {} if origin is None else {"origin": origin}
    caller = await Caller.open(server.ws, subprotocols=["pyai.v1", f"pyai-key.{token}"], **kwargs)
    # As browser clients do; it also spares the wait for a first frame before the verdict.
    await caller.send_control({"type": "configure"})
    return caller


def long_text(tag: str, sentences: int = 6) -> str:
    """Text that takes a few seconds to synthesise, never cached: ``tag`` makes it unique."""
    return " ".join(
        f"This is sentence {n} of the long answer to request {tag}." for n in range(sentences)
    )


async def speech(client: httpx.AsyncClient, key: str, text: str) -> httpx.Response:
    """``POST /v1/audio/speech`` of ``text`` as PCM at 8 kHz, read whole."""
    return await client.post(
        "/v1/audio/speech",
        headers={"Authorization": f"Bearer {key}"},
        json={"input": text, "response_format": "pcm", "sample_rate": 8000},
    )


async def open_speech(client: httpx.AsyncClient, key: str, text: str) -> httpx.Response:
    """A streamed ``POST /v1/audio/speech`` of ``text`` (PCM at 8 kHz), admitted: its
    headers are in, its body is still to read (``aread``) or abandon (``aclose``)."""
    request = client.build_request(
        "POST",
        "/v1/audio/speech",
        headers={"Authorization": f"Bearer {key}"},
        json={"input": text, "response_format": "pcm", "sample_rate": 8000},
    )
    response = await client.send(request, stream=True)
    if response.status_code != 200:
        await response.aread()
        await response.aclose()
        raise AssertionError(f"{response.status_code}: {response.text}")
    return response


async def seconds_until_admitted(client: httpx.AsyncClient, key: str, within: float) -> float:
    """How long until a short speech request of ``key`` is answered rather than refused
    for the key's requests under way (it is not refused otherwise); fails after ``within``
    seconds. The client cannot see a slot given back, so it asks again every 50 ms."""
    started = time.monotonic()
    while True:
        response = await speech(client, key, "Ready.")
        if response.status_code == 200:
            return time.monotonic() - started
        assert_envelope(response, 429, "concurrency_limit_exceeded", "rate_limit_error")
        assert time.monotonic() - started < within, f"still refused after {within} s"
        await asyncio.sleep(0.05)
