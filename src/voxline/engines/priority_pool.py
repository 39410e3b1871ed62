"""Worker threads that run the most urgent queued call first.

The standard executors run calls in the order they were submitted. A shared speech engine
must not: under load, a final decode that a caller is waiting on would queue behind the live
partial transcripts of every other session, and a call's sentence behind the pieces of
long HTTP speech requests. The standard library has no
priority executor, hence this one; it hands out ``concurrent.futures.Future`` objects, so
``asyncio.wrap_future`` and cancellation work as with any executor.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(order=True)
class _Item:
    priority: int
    sequence: int
    call: Callable[[], Any] | None = field(compare=False)  # None: a worker's stop signal
    future: Future[Any] | None = field(compare=False)


class PriorityPool:
    """``workers`` threads; a lower ``priority`` runs first, ties in submission order."""

    def __init__(self, workers: int, *, name: str) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._queue: queue.PriorityQueue[_Item] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{index}", daemon=True)
            for index in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, priority: int, call: Callable[[], T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("PriorityPool is shut down")
        future: Future[T] = Future()
        self._queue.put(_Item(priority, next(self._sequence), call, future))
        return future

    def shutdown(self) -> None:
        """Cancel the queued calls, let running ones finish, and stop the threads (blocks)."""
        self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item.future is not None:
                item.future.cancel()
        for _ in self._threads:
            self._queue.put(_Item(-1, next(self._sequence), None, None))
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item.call is None or item.future is None:
                return
            if not item.future.set_running_or_notify_cancel():
                continue  # cancelled while queued
            try:
                result = item.call()
            except BaseException as error:
                item.future.set_exception(error)
            else:
                item.future.set_result(result)
