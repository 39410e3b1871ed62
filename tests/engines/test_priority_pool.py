"""The priority pool behind the shared speech recogniser."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

from voxline.engines.priority_pool import PriorityPool


def test_most_urgent_first_then_in_order_of_submission() -> None:
    pool = PriorityPool(1, name="test")
    gate = threading.Event()
    ran: list[str] = []
    blocker = pool.submit(0, gate.wait)
    futures = [
        pool.submit(priority, lambda name=name: ran.append(name))
        for priority, name in [(1, "partial a"), (0, "final a"), (1, "partial b"), (0, "final b")]
    ]
    gate.set()
    for future in (blocker, *futures):
        future.result(5)
    pool.shutdown()
    assert ran == ["final a", "final b", "partial a", "partial b"]


def test_errors_reach_the_caller_and_the_worker_goes_on() -> None:
    pool = PriorityPool(1, name="test")

    def fail() -> None:
        raise ValueError("bad audio")

    with pytest.raises(ValueError, match="bad audio"):
        pool.submit(0, fail).result(5)
    assert pool.submit(0, lambda: 42).result(5) == 42
    pool.shutdown()


def test_cancelled_calls_never_run_and_shutdown_drops_the_queue() -> None:
    pool = PriorityPool(1, name="test")
    gate = threading.Event()
    ran: list[int] = []
    running = pool.submit(0, gate.wait)
    deadline = time.monotonic() + 5
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    cancelled = pool.submit(0, lambda: ran.append(1))
    queued = pool.submit(0, lambda: ran.append(2))
    assert cancelled.cancel()
    stopper = threading.Thread(target=pool.shutdown)
    stopper.start()
    deadline = time.monotonic() + 5
    while not queued.cancelled() and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.set()
    stopper.join(5)
    assert running.result(5) is True
    assert ran == []
    with pytest.raises(CancelledError):
        queued.result(5)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(0, lambda: None)
