"""Smart Turn v3.2, for ``smart_turn.py``: a learned end-of-turn model that hears whether a
caller has finished.

The model (BSD-2-Clause, Daily) is a Whisper-encoder classifier of about 8 MB, quantised
for the CPU, that ships inside the ``pipecat-ai`` wheel on PyPI
(``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``). It is given no
transcript, only the sound: the last 8 s of the turn at 16 kHz (a shorter turn padded with
silence at the start), as Whisper's 80 log-mel bands of 10 ms frames over the waveform
normalised to zero mean and unit variance, and gives the probability that the turn is
complete.

Nothing here imports pipecat: the file is found in the installed ``pipecat-ai``
distribution (``pip install --no-deps pipecat-ai==1.14.0`` is enough, none of its
dependencies is used) or given as a path, and checked by its SHA-256. The features are
faster-whisper's numpy extractor, as pipecat's own vendored copy of the Hugging Face one
computes them (80 bands, an 8 s chunk, the last frame dropped).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort
from faster_whisper.feature_extractor import FeatureExtractor

from voxline.audio.pcm import Float32Array

SMART_TURN_SHA256: Final = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
DISTRIBUTION: Final = "pipecat-ai"
DISTRIBUTION_VERSION: Final = "1.14.0"  # the version the file above was taken from
MODEL_IN_WHEEL: Final = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
RATE: Final = 16_000
WINDOW_SECONDS: Final = 8
N_MELS: Final = 80
FRAMES: Final = WINDOW_SECONDS * RATE // 160  # 10 ms hops: 800
_NORMALISE_EPSILON: Final = 1e-7
THRESHOLD: Final = 0.5
"""Pipecat's: a probability above it is a finished turn."""


class SmartTurnUnavailable(RuntimeError):
    """The model file is not installed, or is not the one this code was checked against."""


def model_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The model at ``path``, else the one in the installed ``pipecat-ai`` distribution."""
    if path is not None:
        return Path(path)
    try:
        located = importlib.metadata.distribution(DISTRIBUTION).locate_file(MODEL_IN_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise SmartTurnUnavailable(
            f"Smart Turn v3.2 ships in the PyPI package {DISTRIBUTION}: "
            f"pip install --no-deps {DISTRIBUTION}=={DISTRIBUTION_VERSION} "
            "(or give the path of its smart-turn-v3.2-cpu.onnx)"
        ) from None
    return Path(str(located))


def model_bytes(path: str | os.PathLike[str] | None = None) -> bytes:
    """The model file (see :func:`model_path`), checked by its SHA-256."""
    source = model_path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise SmartTurnUnavailable(f"{source}: {exc.strerror}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != SMART_TURN_SHA256:
        raise SmartTurnUnavailable(
            f"{source}: SHA-256 is {digest}, but Smart Turn v3.2 as shipped in "
            f"{DISTRIBUTION} {DISTRIBUTION_VERSION} has {SMART_TURN_SHA256}"
        )
    return data


@functools.cache
def _extractor() -> FeatureExtractor:
    return FeatureExtractor(feature_size=N_MELS, chunk_length=WINDOW_SECONDS)


def last_window(audio: Float32Array) -> Float32Array:
    """The last 8 s of ``audio`` (16 kHz), a shorter clip padded with silence at the start."""
    samples = WINDOW_SECONDS * RATE
    if len(audio) >= samples:
        return audio[-samples:].astype(np.float32)
    return np.pad(audio.astype(np.float32), (samples - len(audio), 0))


def features(audio: Float32Array) -> Float32Array:
    """The model's input for a turn's ``audio`` (16 kHz floats): [80, 800] log-mel bands."""
    window = last_window(audio)
    normalised = (window - window.mean()) / np.sqrt(window.var() + _NORMALISE_EPSILON)
    log_mel = _extractor()(normalised, padding=0)
    result: Float32Array = np.asarray(log_mel, dtype=np.float32)
    assert result.shape == (N_MELS, FRAMES), result.shape
    return result


class SmartTurn:
    """The model in one single-threaded CPU inference session; :meth:`probability` may be
    called from any thread."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, threads: int = 1) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            model_bytes(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def probability(self, audio: Float32Array) -> float:
        """How likely the turn whose audio (16 kHz floats, up to now) is ``audio`` is
        complete, from 0 to 1."""
        (output,) = self._session.run(None, {"input_features": features(audio)[None]})
        return float(np.asarray(output).reshape(-1)[0])

    def complete(self, audio: Float32Array) -> bool:
        return self.probability(audio) > THRESHOLD
