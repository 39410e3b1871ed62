"""One conversation's time to first audio while HTTP speech requests load the same server.

Starts ``voxline serve --agent default`` with the example knowledge file, then runs the
benchmark's one conversation (``voxline bench --sessions 1``) against it while
``--requesters`` clients each ask ``POST /v1/audio/speech`` for a long text (about 1,400
characters, a different one each time so that the speech cache never answers), streamed,
again and again on one key. A request refused for the key's requests under way waits its
``Retry-After``. Prints the conversation's question TTFB P50 / P95 and what the requesters
got, and the lateness of the agent's audio frames (a sentence not synthesised by the time
the one before it has played out is late); ``--requesters 0`` measures the conversation
alone.

Run: python scripts/measure/speech_contention.py [--requesters 3] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from voxline.auth.keys import KeyStore
from voxline.bench.process import ServeProcess, serve_process
from voxline.store.database import Database

KNOWLEDGE = Path(__file__).resolve().parents[2] / "examples" / "knowledge" / "acme-dental.json"
SENTENCE = "Item {n} of order {order} ships from the northern warehouse on the next working day."
SENTENCES_PER_REQUEST = 16
OUTPUT_RATE = 24_000


@dataclass
class Requests:
    """What the requesters got."""

    completed: int = 0
    refused: int = 0
    failed: int = 0
    audio_seconds: float = 0.0


def _text(order: int) -> str:
    return " ".join(SENTENCE.format(n=n, order=order) for n in range(SENTENCES_PER_REQUEST))


async def _request_speech(url: str, key: str, orders: itertools.count[int], got: Requests) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as client:
        while True:
            body = {"input": _text(next(orders)), "response_format": "pcm", "stream": True}
            size = 0
            async with client.stream("POST", "/v1/audio/speech", json=body) as response:
                if response.status_code == 429:
                    got.refused += 1
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                    continue
                if response.status_code != 200:
                    got.failed += 1
                    await asyncio.sleep(1)
                    continue
                async for chunk in response.aiter_raw():
                    size += len(chunk)
            got.completed += 1
            got.audio_seconds += size / 2 / OUTPUT_RATE


def _bench(server: ServeProcess, key: str, duration: float, report: Path) -> None:
    subprocess.run(
        [
            sys.executable, "-m", "voxline", "bench",
            "--url", server.url, "--key", key, "--server-pid", str(server.process.pid),
            "--sessions", "1", "--ramp", "0", "--duration", str(duration),
            "--json", str(report),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def _measure(
    server: ServeProcess, key: str, requesters: int, duration: float, report: Path
) -> Requests:
    got = Requests()
    orders = itertools.count(int(time.time()))
    loads = [
        asyncio.create_task(_request_speech(server.url, key, orders, got))
        for _ in range(requesters)
    ]
    try:
        await asyncio.to_thread(_bench, server, key, duration, report)
    finally:
        for load in loads:
            load.cancel()
        for load in loads:
            with contextlib.suppress(asyncio.CancelledError):
                await load
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requesters", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxline-contention-") as directory:
        data_dir = Path(directory)
        database = f"sqlite:///{data_dir / 'voxline.db'}"
        with Database(database) as db:
            _, key = KeyStore(db).create(
                env="live", scopes=["omni:session", "speak:synthesize"], label="contention"
            )
        env = {
            "VOXLINE_DATABASE_URL": database,
            "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_KEY": "100000",
            "VOXLINE_LIMITS_CONNECTS_PER_MINUTE_PER_ADDRESS": "100000",
        }
        serve_args = ["--knowledge", str(KNOWLEDGE), "--log-level", "warning"]
        with serve_process(data_dir, agent="default", args=serve_args, env=env) as server:
            report_path = data_dir / "bench.json"
            got = asyncio.run(_measure(server, key, args.requesters, args.duration, report_path))
            report: dict[str, Any] = json.loads(report_path.read_text())
    ttfb = report["ttfb_questions_ms"]
    lag = report["frame_lag_ms"]
    print(
        json.dumps(
            {
                "requesters": args.requesters,
                "question_ttfb_p50_ms": ttfb["50"],
                "question_ttfb_p95_ms": ttfb["95"],
                "frame_lag_p95_ms": lag["95"],
                "frame_lag_p99_ms": lag["99"],
                "questions": report["questions"],
                "replies": report["replies"],
                "errors": report["errors"],
                "speech_completed": got.completed,
                "speech_refused": got.refused,
                "speech_failed": got.failed,
                "speech_audio_s": round(got.audio_seconds, 1),
                "server_cpu_fraction": report.get("server_cpu_fraction"),
            }
        )
    )


if __name__ == "__main__":
    main()
