"""What is kept of a reply the caller cut off, so that it can go on if what cut it off held
no words (a cough, a door): see :class:`voxline.session.floor.Resume`.

It resumes from the start of the sentence the caller was hearing: a reply is spoken a
sentence a piece (the first at most 40 characters), so the caller hears again at most the
one sentence, from a word boundary they know, with nothing said mid-syllable, and the
transcript stays whole sentences. What is kept is bounded: the rest of one reply, at most
:data:`MAX_KEPT_SECONDS` of audio, and only until the floor decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from voxline.protocol.call_control import CallControl
from voxline.session.agent import ReplyPart, Speech
from voxline.session.floor import Decision

MAX_KEPT_SECONDS: Final = 30.0
"""A reply is a few sentences; one with more audio queued than this is not kept."""

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CutReply:
    """A reply cut off: its ``speech`` from the sentence the caller was hearing, the pieces
    still to come (``rest``, the next perhaps already on its way: ``pending``), the call
    control it carried so far, and ``said``, its text through the last piece it had given
    (what the agent's history should hold)."""

    rate: int
    speech: list[Speech]
    rest: AsyncIterator[ReplyPart]
    pending: asyncio.Task[ReplyPart | None] | None
    actions: list[CallControl]
    said: str

    async def pieces(self) -> AsyncIterator[ReplyPart]:
        """The reply from where it resumes; its call control is carried out after its audio,
        as any reply's is."""
        try:
            for speech in self.speech:
                yield speech
            for action in self.actions:
                yield action
            pending, self.pending = self.pending, None
            if pending is not None and (part := await pending) is not None:
                yield part
            async for part in self.rest:
                yield part
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        pending, self.pending = self.pending, None
        await close_pieces(self.rest, pending)


async def close_pieces(
    pieces: AsyncIterator[ReplyPart], pending: asyncio.Task[ReplyPart | None] | None
) -> None:
    """Stop a reply's pieces: the one on its way (``pending``), then the generator."""
    if pending is not None:
        pending.cancel()
        await asyncio.wait({pending})
        if not pending.cancelled():
            pending.exception()  # retrieved: the reply is let go either way
    aclose = getattr(pieces, "aclose", None)
    if aclose is not None:
        await aclose()


def keepable(speech: list[Speech], rate: int) -> bool:
    return sum(len(piece.audio) for piece in speech) <= MAX_KEPT_SECONDS * rate


class Resumption:
    """The session's one cut-off reply, kept while the floor decides whether it resumes, and
    the agent's check for words that decides it."""

    def __init__(self) -> None:
        self._cut: CutReply | None = None
        self._check: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def keep(self, cut: CutReply | None) -> None:
        self.drop()
        self._cut = cut

    def take(self, rate: int) -> CutReply | None:
        """The reply to resume at output ``rate``, if one is kept (at that rate)."""
        cut, self._cut = self._cut, None
        if cut is not None and cut.rate != rate:
            self._close(cut)
            return None
        return cut

    def drop(self) -> None:
        """The cut is final: let the reply's rest go."""
        cut, self._cut = self._cut, None
        if cut is not None:
            self._close(cut)

    def check(
        self,
        ask: Coroutine[Any, Any, bool],
        answer: Callable[[bool], list[Decision]],
        decide: Callable[[list[Decision]], Awaitable[None]],
    ) -> None:
        """Ask the agent whether the turn held words (``ask``), tell the floor (``answer``)
        and carry out what it decides (``decide``); one check at a time. An agent that fails
        to tell is taken to have heard words: the turn is answered as any turn."""

        async def run() -> None:
            try:
                held = await ask
            except Exception:
                log.warning("could not tell whether the turn held words", exc_info=True)
                held = True
            await decide(answer(held))

        self._cancel_check()
        self._check = asyncio.get_running_loop().create_task(run(), name="check-words")
        self._check.add_done_callback(_log_failure)

    def _cancel_check(self) -> None:
        check, self._check = self._check, None
        if check is not None:
            check.cancel()

    def close(self) -> None:
        self._cancel_check()
        self.drop()

    def _close(self, cut: CutReply) -> None:
        task = asyncio.get_running_loop().create_task(cut.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _log_failure(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.error("check for words failed", exc_info=task.exception())
