"""Graceful shutdown: on SIGTERM or SIGINT, end the sessions before uvicorn cuts them off.

uvicorn's own shutdown closes every WebSocket at once with 1012 and only then runs the
lifespan shutdown, too late for a ``session_end``; it has no hook before that. So while the
app runs, those signals first reach the handler installed here, which runs the drain (no
new sessions, every live one ended with a reason, within the grace period) and then hands
the signal on to the handler it replaced, uvicorn's, which stops the server as before. A
second signal during the drain is handed on at once: press Ctrl-C twice to stop now.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def drain_on_signals(drain: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run ``drain`` before the current SIGINT/SIGTERM handlers; returns the undo.

    Signals are only handled in the main thread; elsewhere (an app under a test client)
    nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    tasks: set[asyncio.Task[None]] = set()  # held until done
    draining = False

    def hand_on(sig: int, frame: FrameType | None) -> None:
        handler = previous[signal.Signals(sig)]
        if callable(handler):
            handler(sig, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(sig, signal.SIG_DFL)
            signal.raise_signal(sig)

    async def drain_then_hand_on(sig: int) -> None:
        try:
            await drain()
        finally:
            hand_on(sig, None)

    def start(sig: int) -> None:
        task = loop.create_task(drain_then_hand_on(sig))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal draining
        if draining:
            hand_on(sig, frame)
        else:
            draining = True
            loop.call_soon_threadsafe(start, sig)

    for sig in _SIGNALS:
        signal.signal(sig, on_signal)

    def undo() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)

    return undo
