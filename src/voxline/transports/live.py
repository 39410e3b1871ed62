"""The calls a server process is running, so that a shutdown can end each one."""

from __future__ import annotations

import asyncio
import logging

from voxline.session.session import Session

log = logging.getLogger(__name__)


class LiveCalls:
    """Every session between its admission and its finished record, in this process.

    Draining ends each one with a reason and close code, and ends at once any that enters
    afterwards (admitted just before the gate closed), so that none is left to uvicorn's
    own shutdown, which would cut it off with 1012 and no ``session_end``. It also logs a
    shared-state outage once for the process rather than once per session.
    """

    def __init__(self) -> None:
        self._sessions: set[Session] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._ending: tuple[str, int] | None = None
        self._endings: set[asyncio.Task[None]] = set()
        self._state_down = False

    def __len__(self) -> int:
        return len(self._sessions)

    async def enter(self, session: Session) -> None:
        self._sessions.add(session)
        self._empty.clear()
        if self._ending is not None:
            reason, code = self._ending
            await session.end(reason, code=code)

    def leave(self, session: Session) -> None:
        """The session's record is finished."""
        self._sessions.discard(session)
        if not self._sessions:
            self._empty.set()

    async def ended(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for every session to end by itself; whether they did."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def drain(self, reason: str, *, code: int, grace_s: float) -> int:
        """End every session with ``reason`` and ``code``, and wait up to ``grace_s`` for
        their records to be finished; the number still unfinished then."""
        self._ending = (reason, code)
        # Ended side by side, within the grace: a goodbye may wait on a slow client's socket.
        for session in list(self._sessions):
            task = asyncio.create_task(session.end(reason, code=code))
            self._endings.add(task)
            task.add_done_callback(self._endings.discard)
        if not await self.ended(grace_s):
            log.warning("%d session(s) still open after the %g s grace", len(self), grace_s)
        return len(self)

    def state_unreachable(self, error: Exception) -> None:
        if not self._state_down:
            self._state_down = True
            log.warning(
                "shared state unreachable (%s): refusing new sessions; live ones go on", error
            )

    def state_reachable(self) -> None:
        if self._state_down:
            self._state_down = False
            log.warning("shared state reachable again: leases re-asserted")
