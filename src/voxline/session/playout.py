"""Agent audio paced to real time, and a clock of what the caller has actually heard.

The queue stays here, on the server, so that a barge-in can drop it at once: only a small
lead (``lead_ms``) is ever in flight to the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voxline.session.agent import Speech

MARKS_WAIT_SECONDS = 2.0
"""How long past its own clock a reply waits for the far end to report the rest played
(Twilio's marks), before it takes it as heard anyway."""


@dataclass(slots=True)
class _Segment:
    text: str
    start: int  # first sample, in samples since the reply began
    end: int


def heard_prefix(text: str, fraction: float) -> str:
    """The part of ``text`` said in the first ``fraction`` of its audio, cut at a word end."""
    if fraction >= 1:
        return text
    if fraction <= 0:
        return ""
    cut = int(len(text) * fraction)
    space = text.rfind(" ", 0, cut + 1)
    return text[:space].rstrip() if space > 0 else ""


class Playout:
    """Sends one reply's audio in ``chunk_ms`` chunks, at most ``lead_ms`` ahead of real time."""

    def __init__(
        self,
        send_audio: Callable[[bytes], Awaitable[None]],
        rate: int,
        *,
        chunk_ms: int = 20,
        lead_ms: int = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send_audio = send_audio
        self.rate = rate
        self._chunk = rate * chunk_ms // 1000
        self._lead = lead_ms / 1000
        self._clock = clock
        self._segments: list[_Segment] = []
        self._pending: deque[bytes] = deque()
        self._queued = 0  # samples enqueued for this reply
        self._sent = 0  # samples sent for this reply
        self._heard_base = 0  # samples heard before the current burst
        self._burst_start = 0.0  # clock time when the current burst began
        self._burst_sent = 0  # samples sent in the current burst
        self._wakeup = asyncio.Event()
        self._closed = False
        self._done = asyncio.Event()
        self._done.set()
        self._task: asyncio.Task[None] | None = None
        self.samples_sent_total = 0
        self._reply_start_total = 0  # samples_sent_total when the current reply began
        self._played_total: int | None = None  # as far as the far end reports having played
        self._reported = asyncio.Event()  # set as the far end reports more played

    @property
    def active(self) -> bool:
        """Agent audio is queued or still in the caller's ears."""
        return not self._done.is_set()

    def begin(self) -> None:
        """Start a new reply (resets the heard clock)."""
        self._segments.clear()
        self._pending.clear()
        self._queued = self._sent = self._heard_base = self._burst_sent = 0
        self._reply_start_total = self.samples_sent_total
        self._closed = False
        self._done.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="playout")

    def enqueue(self, speech: Speech) -> None:
        audio = speech.audio
        start = self._queued
        self._queued += len(audio)
        self._segments.append(_Segment(speech.text, start, self._queued))
        data = audio.astype("<i2", copy=False).tobytes()
        step = self._chunk * 2
        self._pending.extend(data[i : i + step] for i in range(0, len(data), step))
        self._wakeup.set()

    def close(self) -> None:
        """No more audio for this reply: ``wait`` returns once it has all been heard."""
        self._closed = True
        self._wakeup.set()

    async def wait(self) -> None:
        await self._done.wait()

    def played(self, total_samples: int) -> None:
        """The far end reports having played agent audio up to ``total_samples`` (counted
        like ``samples_sent_total``; telephony marks): the caller has heard no more."""
        self._played_total = total_samples
        self._reported.set()

    async def until_heard(self, samples: int) -> None:
        """Return once the caller has heard ``samples`` of this reply, or it is over."""
        while self.active and (left := samples - self.heard_samples()) > 0:
            if self._played_total is not None:
                self._reported.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._reported.wait(), left / self.rate + 0.05)
            else:
                await asyncio.sleep(left / self.rate)

    def heard_samples(self) -> int:
        if self._burst_sent == 0:
            heard = self._heard_base
        else:
            elapsed = int((self._clock() - self._burst_start) * self.rate)
            heard = self._heard_base + max(0, min(self._burst_sent, elapsed))
        if self._played_total is not None:
            heard = min(heard, max(0, self._played_total - self._reply_start_total))
        return heard

    def heard_text(self) -> str:
        heard = self.heard_samples()
        parts: list[str] = []
        for segment in self._segments:
            if heard >= segment.end:
                parts.append(segment.text)
                continue
            if heard > segment.start:
                fraction = (heard - segment.start) / (segment.end - segment.start)
                parts.append(heard_prefix(segment.text, fraction))
            break
        return " ".join(part for part in parts if part)

    def hearing(self) -> int:
        """Which piece of this reply the caller is hearing: the first not heard to its end
        (the number of pieces once all have been)."""
        heard = self.heard_samples()
        segments = self._segments
        return next((i for i, seg in enumerate(segments) if heard < seg.end), len(segments))

    def full_text(self) -> str:
        return " ".join(segment.text for segment in self._segments if segment.text)

    def interrupt(self) -> str:
        """Stop at once, drop the queue, and return the text the caller heard."""
        heard = self.heard_text()
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._done.set()
        return heard

    async def aclose(self) -> None:
        self.interrupt()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    await self._until_heard()
                    self._done.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            now = self._clock()
            if self._burst_sent == 0 or now - self._burst_start > self._burst_sent / self.rate:
                # A new burst, or an underrun: everything sent so far has been heard.
                self._heard_base = self._sent
                self._burst_start = now
                self._burst_sent = 0
            due = self._burst_start + self._burst_sent / self.rate - self._lead
            if due > now:
                await asyncio.sleep(due - now)
            chunk = self._pending.popleft()
            samples = len(chunk) // 2
            self._burst_sent += samples
            self._sent += samples
            self.samples_sent_total += samples
            await self._send_audio(chunk)

    async def _until_heard(self) -> None:
        """Until the audio sent has had time to play, and the far end, if it reports what
        it played, says it has (a phone's jitter buffer may lag the clock)."""
        remaining = self._burst_start + self._burst_sent / self.rate - self._clock()
        if remaining > 0:
            await asyncio.sleep(remaining)
        deadline = self._clock() + MARKS_WAIT_SECONDS
        while self._played_total is not None and self._played_total < self.samples_sent_total:
            self._reported.clear()
            left = deadline - self._clock()
            if left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reported.wait(), left)
