"""A scripted caller over a real WebSocket: streams audio in real time, records what it gets."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

FRAME_MS = 20


@dataclass
class Received:
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio: list[tuple[float, bytes]] = field(default_factory=list)
    text_messages: int = 0
    binary_messages: int = 0
    close_code: int | None = None
    close_reason: str | None = None

    def names(self) -> list[str]:
        return [event["event"] for _, event in self.events]

    def first(self, name: str) -> dict[str, Any]:
        return next(event for _, event in self.events if event["event"] == name)

    def when(self, name: str) -> float:
        return next(t for t, event in self.events if event["event"] == name)

    def audio_bytes(self, after: float = 0.0, before: float = float("inf")) -> int:
        return sum(len(pcm) for t, pcm in self.audio if after <= t < before)


class Caller:
    """One connection; ``tagged`` picks the client's framing (tagged binary or raw text)."""

    def __init__(self, ws: ClientConnection, *, tagged: bool, rate: int) -> None:
        self.ws = ws
        self.tagged = tagged
        self.rate = rate
        self.got = Received()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        subprotocols: list[str] | None = None,
        tagged: bool = True,
        rate: int = 24000,
        **kwargs: Any,
    ) -> Caller:
        ws = await connect(url, subprotocols=subprotocols or None, max_size=2**20, **kwargs)  # type: ignore[arg-type]
        return cls(ws, tagged=tagged, rate=rate)

    async def send_control(self, message: dict[str, Any]) -> None:
        body = json.dumps(message)
        await self.ws.send(b"\x03" + body.encode() if self.tagged else body)

    async def send_pcm(self, pcm: bytes) -> None:
        await self.ws.send(b"\x01" + pcm if self.tagged else pcm)

    async def stream(self, samples: npt.NDArray[np.int16]) -> None:
        """Send ``samples`` as 20 ms frames against absolute real-time deadlines."""
        step = self.rate * FRAME_MS // 1000
        start = time.monotonic()
        for index, offset in enumerate(range(0, len(samples), step)):
            await self.send_pcm(samples[offset : offset + step].tobytes())
            delay = start + (index + 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def silence(self, seconds: float) -> None:
        await self.stream(np.zeros(int(seconds * self.rate), dtype=np.int16))

    async def silence_until(
        self, predicate: Callable[[Received], bool], timeout: float = 15.0
    ) -> None:
        """Keep streaming silence, as real clients do, until ``predicate`` holds."""
        frame = np.zeros(self.rate * FRAME_MS // 1000, dtype=np.int16).tobytes()
        start = time.monotonic()
        index = 0
        while not predicate(self.got):
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out; got {self.got.names()}")
            try:
                await self.send_pcm(frame)
            except ConnectionClosed:
                await self.closed()  # the server ended the call: judge what came before
                if predicate(self.got):
                    return
                raise
            index += 1
            delay = start + index * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def wait_for(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, event in self.got.events:
                if event["event"] == name:
                    return event
            if self._reader.done():
                break
            await asyncio.sleep(0.01)
        raise AssertionError(f"no {name!r} event; got {self.got.names()}")

    async def closed(self, timeout: float = 5.0) -> Received:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.got

    async def close(self) -> None:
        await self.ws.close()
        await self.closed()

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                now = time.monotonic()
                if isinstance(message, str):
                    self.got.text_messages += 1
                    self.got.events.append((now, json.loads(message)))
                    continue
                self.got.binary_messages += 1
                if not self.tagged:
                    self.got.audio.append((now, message))
                elif message[0] == 0x01:
                    self.got.audio.append((now, message[1:]))
                elif message[0] in (0x02, 0x03):
                    self.got.events.append((now, json.loads(message[1:])))
                else:
                    raise AssertionError(f"unknown tag {message[0]}")
        except ConnectionClosed:
            pass
        self.got.close_code = self.ws.close_code
        self.got.close_reason = self.ws.close_reason
