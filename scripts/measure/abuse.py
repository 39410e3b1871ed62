"""Probes of callers who send too much, against a real ``voxline serve``.

flood: three callers push 32 KiB messages of loud noise as fast as the socket takes them,
for at most 10 s, while a fourth asks a question (echo agent). Prints how each flooder's
call ended, the server's memory growth (with its VAD process) and when the fourth caller
was answered.

talkers: three callers talk for 64 s without a pause long enough to end a turn, while a
fourth asks a question every few seconds (default agent, the example knowledge file).
Prints the server's cores and the fourth caller's times from the end of each question to
the agent's answer (``turn_begin``).

idle: with the server's open-file limit lowered to 1,024 (the usual default), 1,100
connections open and send nothing, and 100 more trickle one header line a second. Prints,
every second for 30 s, how many of them the server still holds and whether ``/healthz``
answers.

Run: python scripts/measure/abuse.py flood|talkers|idle
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from voxline.auth.keys import KeyStore
from voxline.bench.process import ServeProcess, serve_process
from voxline.bench.speech import synthesize
from voxline.client import OmniClient, realtime_url
from voxline.client.sdk import stream_pcm
from voxline.protocol.server_messages import ServerEvent
from voxline.server.capacity import raise_open_file_limit
from voxline.store.database import Database

RATE = 24000
MIB = 1024 * 1024
KNOWLEDGE = Path(__file__).resolve().parents[2] / "examples" / "knowledge" / "acme-dental.json"
MONOLOGUE = (
    "I have been meaning to call about my appointment for quite a while now",
    "my daughter needs a cleaning and I also want to ask about our insurance",
    "last time the receptionist told me something different about the parking",
    "and honestly I am not sure which day works best for us because of school",
    "we could do mornings on Tuesday or maybe Thursday afternoon if that is easier",
)
OPEN_LIMITS = {
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": "100000",
    "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "100000",
}


class Listener:
    """A client and the events it has received, with their arrival times."""

    def __init__(self, client: OmniClient) -> None:
        self.client = client
        self.events: list[tuple[float, str]] = []
        self.greeted = asyncio.Event()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.client.events():
            if isinstance(event, ServerEvent):
                self.events.append((time.monotonic(), event.name))
                if event.name == "hello":
                    self.greeted.set()

    def times(self, name: str) -> list[float]:
        return [at for at, event in self.events if event == name]

    async def until(self, done: Callable[[], bool], seconds: float = 20.0) -> None:
        """Stream silence in real time, as a live line does, until ``done`` or ``seconds``
        have passed."""
        frame = bytes(2 * RATE // 50)
        loop = asyncio.get_running_loop()
        start = loop.time()
        sent = 0
        while not done() and loop.time() - start < seconds:
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * 0.02 - loop.time()))
            await self.client.send_audio(frame)

    async def closed(self) -> None:
        await self._reading


def rss(pid: int) -> int:
    process = psutil.Process(pid)
    children = process.children(recursive=True)
    return process.memory_info().rss + sum(child.memory_info().rss for child in children)


def cpu_seconds(pid: int) -> float:
    process = psutil.Process(pid)
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        times = each.cpu_times()
        total += times.user + times.system
    return total


def monologue(seconds: float) -> bytes:
    """Sentences run together with 120 ms between them, shorter than any turn end."""
    parts = []
    for sentence in MONOLOGUE:
        audio = synthesize(sentence, RATE)
        loud = np.flatnonzero(np.abs(audio) > 300)
        parts.append(audio[: loud[-1] + int(0.12 * RATE)])
    joined = np.concatenate(parts * (1 + int(seconds * RATE) // sum(map(len, parts))))
    return joined[: int(seconds * RATE)].tobytes()


async def connect(server: ServeProcess, key: str) -> Listener:
    client = await OmniClient.connect(realtime_url(f"http://127.0.0.1:{server.port}"), key)
    listener = Listener(client)
    await listener.greeted.wait()
    return listener


async def ask(listener: Listener, question: bytes) -> float:
    """Ask ``question``; seconds from its end to the agent's ``turn_begin``."""
    answered = len(listener.times("turn_begin"))
    await stream_pcm(listener.client, question, RATE)
    end = time.monotonic()
    await listener.until(lambda: len(listener.times("turn_begin")) > answered)
    begins = listener.times("turn_begin")
    return begins[answered] - end if len(begins) > answered else float("inf")


async def flood(server: ServeProcess, key: str) -> str:
    listener = await connect(server, key)
    noise = np.random.default_rng(7).integers(-8000, 8000, 16 * 1024, dtype=np.int16).tobytes()
    start = time.monotonic()
    try:
        while time.monotonic() - start < 10:
            await listener.client.send_audio(noise)
    except Exception:  # the server closed the call
        pass
    await listener.closed()
    client = listener.client
    return f"{client.close_code} {client.close_reason} after {time.monotonic() - start:.2f} s"


async def probe_flood(server: ServeProcess, new_key: Callable[[], str]) -> None:
    question = synthesize("Hello, could you tell me your opening hours?", RATE).tobytes()
    healthy = await connect(server, new_key())
    before = peak = rss(server.process.pid)
    floods = [asyncio.create_task(flood(server, new_key())) for _ in range(3)]
    asking = asyncio.create_task(ask(healthy, question))
    while not all(task.done() for task in floods):
        peak = max(peak, rss(server.process.pid))
        await asyncio.sleep(0.2)
    print("flooders:", "; ".join(task.result() for task in floods))
    growth = (peak - before) / MIB
    print(f"server memory {before / MIB:.0f} MiB, peak {peak / MIB:.0f} MiB (+{growth:.0f})")
    print(f"the caller alongside was answered {await asking:.2f} s after its question")


async def probe_talkers(server: ServeProcess, new_key: Callable[[], str]) -> None:
    talk = monologue(64)
    question = synthesize("What time do you open tomorrow?", RATE).tobytes()
    asker = await connect(server, new_key())
    talkers = [await connect(server, new_key()) for _ in range(3)]
    started, used = time.monotonic(), cpu_seconds(server.process.pid)
    talking = [asyncio.create_task(stream_pcm(t.client, talk, RATE)) for t in talkers]
    answers: list[float] = []
    while not all(task.done() for task in talking):
        await asker.until(lambda: False, seconds=1.0)
        answers.append(await ask(asker, question))
        await asker.until(lambda: False, seconds=3.0)
    cores = (cpu_seconds(server.process.pid) - used) / (time.monotonic() - started)
    print(f"server {cores:.2f} cores; answers after (s): {[round(a, 2) for a in answers]}")
    print(f"median {statistics.median(answers):.2f} s, longest {max(answers):.2f} s")


async def hold(port: int, trickle: bool, held: list[int]) -> None:
    """One connection that never completes a request; counted in ``held`` while open."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return
    held[0] += 1
    try:
        if trickle:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        while not reader.at_eof():
            if trickle:
                writer.write(b"X-Slow: 1\r\n")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1024), 1.0)
    except OSError:
        pass
    finally:
        held[0] -= 1
        writer.close()


async def healthy(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=0.8) as client:
            return (await client.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


async def probe_idle(server: ServeProcess, new_key: Callable[[], str]) -> None:
    raise_open_file_limit()  # this probe's own 1,200 sockets
    psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE, (1024, 1024))
    held = [0]
    holders = [
        asyncio.create_task(hold(server.port, trickle, held))
        for trickle in [False] * 1100 + [True] * 100
    ]
    started = time.monotonic()
    for _ in range(30):
        await asyncio.sleep(1.0)
        answered = await healthy(server.url)
        print(f"{time.monotonic() - started:5.1f} s  held {held[0]:5d}  /healthz {answered}")
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)


PROBES: dict[str, tuple[str, tuple[str, ...], Callable[..., Coroutine[Any, Any, None]]]] = {
    "flood": ("echo", (), probe_flood),
    "talkers": ("default", ("--knowledge", str(KNOWLEDGE)), probe_talkers),
    "idle": ("echo", (), probe_idle),
}


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "flood"
    agent, args, probe = PROBES[name]
    data_dir = Path(tempfile.mkdtemp())
    with serve_process(data_dir, agent=agent, args=args, env=OPEN_LIMITS) as server:

        def new_key() -> str:
            with Database(data_dir / "voxline.db") as db:
                return KeyStore(db).create(env="live", scopes=["omni:session"])[1]

        asyncio.run(probe(server, new_key))


if __name__ == "__main__":
    main()
