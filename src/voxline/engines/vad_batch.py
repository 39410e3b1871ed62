"""Voice activity detection for every session of a process, batched, off the event loop.

One :class:`VadBatcher` per process runs the pending windows of all sessions as one batch:
with one intra-op thread a window costs 0.30 ms alone but 0.12 ms in a batch of 32. Where
the batch runs is an :class:`Inference`: a worker thread (:class:`ThreadInference`) or a
child process (:class:`ChildProcessInference`, what the server uses). In a thread, each
inference hands the GIL back and forth with a busy event loop; at 200 sessions the loop
then spent a third of its time waiting for the GIL and fell behind real time. A child
process shares no GIL with the loop, and its requests cost the loop a pickle of the windows.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol, Self

import numpy as np

from voxline.engines.vad import Float32Array, SileroModel, VadChunk, VadStream, model_bytes

logger = logging.getLogger(__name__)

Job = tuple[Float32Array, Float32Array, int]
"""Windows [steps, context + window], the state [2, 128] before them, and the sample rate."""
Result = tuple[Float32Array, Float32Array]
"""Probabilities [steps] and the state [2, 128] after them."""


def run_jobs(model: SileroModel, jobs: Sequence[Job]) -> tuple[list[Result], int]:
    """Run every job through its windows, batching across jobs at each step.

    Returns a result per job and the number of inferences run. Jobs are sorted longest
    first, so that those still running at each step, and their states, are a prefix.
    """
    results: dict[int, Result] = {}
    inferences = 0
    for rate in {job[2] for job in jobs}:
        order = sorted(
            (i for i, job in enumerate(jobs) if job[2] == rate),
            key=lambda i: len(jobs[i][0]),
            reverse=True,
        )
        lengths = [len(jobs[i][0]) for i in order]
        states = np.stack([jobs[i][1] for i in order], axis=1)
        probabilities = np.empty((len(order), lengths[0]), dtype=np.float32)
        for step in range(lengths[0]):
            width = sum(length > step for length in lengths)
            windows = np.stack([jobs[i][0][step] for i in order[:width]])
            probabilities[:width, step], states[:, :width] = model.infer(
                windows, states[:, :width], rate
            )
            inferences += 1
        for row, i in enumerate(order):
            results[i] = (probabilities[row, : lengths[row]], states[:, row].copy())
    return [results[i] for i in range(len(jobs))], inferences


class Inference(Protocol):
    """Where :class:`VadBatcher` runs its batches."""

    async def start(self) -> None: ...

    async def run(self, jobs: Sequence[Job]) -> tuple[list[Result], int]:
        """:func:`run_jobs` on the model."""
        ...

    async def aclose(self) -> None: ...


class ThreadInference:
    """Inference on ``model`` in one worker thread of this process."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxline-vad")

    async def run(self, jobs: Sequence[Job]) -> tuple[list[Result], int]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, run_jobs, self._model, jobs)

    async def aclose(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


_child_model: SileroModel | None = None


def _load_in_child(path: str | None) -> None:
    global _child_model
    # Ctrl-C reaches the whole process group; the parent decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    _child_model = SileroModel(path)


def _exit_with_parent(parent: int) -> None:
    """A server process that is killed outright (SIGKILL, the OOM killer) cannot stop its
    child, which would live on idle, holding its model: the child leaves once orphaned."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _run_in_child(jobs: Sequence[Job]) -> tuple[list[Result], int]:
    assert _child_model is not None, "the inference process has no model"
    return run_jobs(_child_model, jobs)


class ChildProcessInference:
    """Inference in a child process that loads the model (the packaged one, or ``path``).

    The model file is checked in this process first, so a bad file fails here with a clear
    message rather than as a broken child. A child that dies is replaced, and the batch it
    held runs again on the new one: jobs carry their streams' state, so a rerun is exact.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        model_bytes(path)
        self._path = None if path is None else os.fspath(path)
        self._pool: ProcessPoolExecutor | None = None

    def _spawn(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_in_child,
            initargs=(self._path,),
        )

    async def start(self) -> None:
        self._pool = self._spawn()
        await self.run([])  # the model is loaded before the first session needs it

    async def run(self, jobs: Sequence[Job]) -> tuple[list[Result], int]:
        if self._pool is None:
            raise RuntimeError("ChildProcessInference is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, _run_in_child, jobs)
        except BrokenProcessPool:
            logger.warning("the voice activity detection process died; starting another")
            self._replace_pool()
            return await loop.run_in_executor(self._pool, _run_in_child, jobs)

    def _replace_pool(self) -> None:
        broken, self._pool = self._pool, self._spawn()
        if broken is not None:
            broken.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


@dataclass(eq=False, slots=True)
class _Request:
    chunk: VadChunk
    sample_rate: int
    future: asyncio.Future[tuple[list[float], Float32Array]]
    state: Float32Array
    done: int = 0
    probabilities: list[float] = field(default_factory=list)


class VadBatcher:
    """Runs the pending windows of every stream together, one batch at a time.

    The model runs in a worker thread and the requests that arrive meanwhile make up the
    next batch. A quiet server runs each window at once. When the last batch served more
    than one stream, the batcher first gathers for ``gather_seconds``, so that a busy
    server runs fewer, wider inferences: each costs the worker thread a hand-over of the
    GIL from the busy event loop, and a window in a wide batch costs less than half as
    much CPU as one run alone. Each request advances at most ``max_steps`` windows per
    batch, so one long feed cannot hold up everyone else's next result.

    Use as ``async with VadBatcher(inference) as vad:`` or with :meth:`start` and
    :meth:`aclose`.
    """

    def __init__(
        self, inference: Inference, *, max_steps: int = 16, gather_seconds: float = 0.01
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if gather_seconds < 0:
            raise ValueError("gather_seconds must not be negative")
        self._inference = inference
        self._max_steps = max_steps
        self._gather = gather_seconds
        self._queue: list[_Request] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inferences = 0
        self._windows = 0

    @property
    def inferences(self) -> int:
        """Model runs so far; ``windows / inferences`` is the mean batch size."""
        return self._inferences

    @property
    def windows(self) -> int:
        """Windows run through the model so far."""
        return self._windows

    async def start(self) -> None:
        """Start the inference, then serve on the running event loop."""
        if self._task is not None:
            raise RuntimeError("VadBatcher already started")
        await self._inference.start()
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="voxline-vad")

    async def aclose(self) -> None:
        """Finish the requests already made, then stop; later requests raise RuntimeError."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self._inference.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def probabilities(self, stream: VadStream, audio: Float32Array) -> list[float]:
        """Feed ``audio`` to ``stream``; one speech probability per window it completes.

        If the call is cancelled, or fails, the stream is left as it was before: the audio
        is not consumed.
        """
        if self._task is None or self._task.done() or self._closing:
            raise RuntimeError("VadBatcher is not running")
        chunk = stream.stage(audio)
        probabilities: list[float] = []
        state = chunk.state
        try:
            if len(chunk.inputs):
                future: asyncio.Future[tuple[list[float], Float32Array]]
                future = asyncio.get_running_loop().create_future()
                self._queue.append(_Request(chunk, stream.sample_rate, future, chunk.state))
                self._wake.set()
                probabilities, state = await future
        except BaseException:
            stream.discard(chunk)
            raise
        return stream.commit(chunk, state, probabilities)

    async def _serve(self) -> None:
        batch: list[_Request] = []
        width = 0  # streams in the last batch
        try:
            while self._queue or not self._closing:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if width > 1 and len(self._queue) < width and not self._closing:
                    await asyncio.sleep(self._gather)
                batch = [request for request in self._queue if not request.future.done()]
                width = len(batch)
                self._queue = []
                if batch:
                    await self._run(batch)
                    batch = []
        finally:
            for request in (*batch, *self._queue):
                if not request.future.done():
                    request.future.set_exception(RuntimeError("VadBatcher stopped"))

    async def _run(self, batch: list[_Request]) -> None:
        jobs = [
            (r.chunk.inputs[r.done : r.done + self._max_steps], r.state, r.sample_rate)
            for r in batch
        ]
        try:
            results, inferences = await self._inference.run(jobs)
        except Exception as error:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error)
            return
        self._inferences += inferences
        unfinished: list[_Request] = []
        for request, (probabilities, state) in zip(batch, results, strict=True):
            self._windows += len(probabilities)
            if request.future.done():
                continue
            request.done += len(probabilities)
            request.state = state
            request.probabilities += probabilities.tolist()
            if request.done < len(request.chunk.inputs):
                unfinished.append(request)
            else:
                request.future.set_result((request.probabilities, state))
        self._queue[:0] = unfinished
