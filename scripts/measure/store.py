"""Measure what a call's record costs the server: opening it as the session starts and
finishing it as it ends, as the server does, from worker threads (``asyncio.to_thread``).

Per round: ``--calls`` calls, ``--parallel`` of them at once (sessions starting and ending
together), each an open then a finish. Reports the wall time and the process's CPU time
(which is what the event loop competes with, GIL included) per call, the median of the
rounds, and how late a 5 ms timer on the event loop fired meanwhile (P99, worst): what the
calls' records cost the loop that carries the audio. On a fresh SQLite file by default, or
on ``--database-url``.

    python scripts/measure/store.py [--calls 2000] [--parallel 8] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import Database


async def one_call(calls: CallRecords, gate: asyncio.Semaphore) -> None:
    async with gate:
        call_id = f"call_{uuid.uuid4().hex}"
        started_at = time.time()
        record = CallRecord(
            call_id=call_id, key_id="key_bench", session_label=None, transport="omni",
            started_at=started_at,
        )  # fmt: skip
        await asyncio.to_thread(calls.open, record)
        await asyncio.to_thread(
            calls.finish,
            call_id,
            ended_at=started_at + 1,
            close_code=1000,
            close_reason="client_closed",
            audio_in_seconds=1.0,
            audio_out_seconds=1.0,
            turns=1,
            barge_ins=0,
        )


async def tick(lateness: list[float], period: float = 0.005) -> None:
    """Sleep ``period`` again and again, noting how late each wake-up is."""
    while True:
        due = time.perf_counter() + period
        await asyncio.sleep(period)
        lateness.append(time.perf_counter() - due)


async def round_of(
    calls: CallRecords, count: int, parallel: int, lateness: list[float]
) -> tuple[float, float]:
    """Wall and CPU seconds per call."""
    gate = asyncio.Semaphore(parallel)
    ticker = asyncio.create_task(tick(lateness))
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_call(calls, gate) for _ in range(count)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ticker.cancel()
    return wall / count, cpu / count


async def measure(target: str | Path, count: int, parallel: int, rounds: int) -> None:
    db = Database(target)
    try:
        calls = CallRecords(db, server_id="bench")
        await round_of(calls, min(count, 200), parallel, [])  # warm up: connections, caches
        lateness: list[float] = []
        results = [await round_of(calls, count, parallel, lateness) for _ in range(rounds)]
    finally:
        db.close()
    walls, cpus = zip(*results, strict=True)
    late = sorted(lateness)
    print(
        f"open+finish per call ({count} calls, {parallel} at once, median of {rounds}): "
        f"wall {statistics.median(walls) * 1e6:.0f} us, "
        f"CPU {statistics.median(cpus) * 1e6:.0f} us "
        f"(rounds: {', '.join(f'{w * 1e6:.0f}' for w in walls)} us); "
        f"5 ms timer late P99 {late[len(late) * 99 // 100] * 1e3:.1f} ms, "
        f"worst {late[-1] * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxline-store-") as directory:
        target: str | Path = args.database_url or Path(directory) / "voxline.db"
        asyncio.run(measure(target, args.calls, args.parallel, args.rounds))


if __name__ == "__main__":
    main()
