"""What phone calls share, through Twilio or FreeSWITCH: the ``configure`` they start with,
and call control (the phone key they spend is admitted by ``Admission.phone``).

A phone has no client to read ``transfer_to_human`` or ``end_call``: the phone line acts on
them, once the caller has heard the agent's line about it (the session carries call control
out after the reply's audio).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import replace

from starlette.websockets import WebSocket

from voxline.config import Settings
from voxline.protocol import client_frames
from voxline.protocol.call_control import HangUp, SendDigits, Transfer
from voxline.protocol.client_frames import Configure
from voxline.protocol.events import Event
from voxline.session.session import Session
from voxline.transports.call import CallSocket

log = logging.getLogger(__name__)


def start_configure(settings: Settings, out_rate: int) -> Configure:
    """The configured ``configure`` of phone calls, validated like a client's; the audio
    rate is the phone line's, whatever it says."""
    parsed = client_frames.parse({**settings.phone.configure, "type": "configure"})
    for notice in parsed.notices:
        log.warning("phone configure: %s", notice.get("message"))
    frame = parsed.frame if isinstance(parsed.frame, Configure) else Configure.of()
    keys = (*(key for key in frame.keys if key != "audio_out"), "audio_out")
    return replace(frame, settings=replace(frame.settings, audio_out=out_rate), keys=keys)


class PhoneLine(CallSocket, ABC):
    """A phone call's socket: call control becomes actions on the call.

    Subclasses say how to carry audio and how to act on the call. The destination of a
    transfer is the configured one, never one the agent names: a language model must not
    be able to dial anywhere. A transfer or hang-up is carried out as the session closes,
    once the call record has its reason: the far end's own close, which follows at once,
    must not be taken for the caller hanging up.
    """

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.session: Session | None = None
        self._transferring = False

    async def send_event(self, event: Event) -> None:
        """A phone has no client to read events."""

    async def transfer(self, request: Transfer) -> bool:
        """The session ends, and the call is transferred as it closes."""
        self._transferring = True
        return True

    async def hang_up(self, request: HangUp) -> None:
        """The session closes right after, and the call is hung up as it does."""

    async def send_digits(self, request: SendDigits) -> None:
        await self._control(self._send_digits(request.digits), "send_dtmf")

    async def close(self, code: int, reason: str) -> None:
        """The session ended: transfer the call if that is why, else hang up (a phone call
        without its agent is only silence, and so is a transfer that failed)."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            transferred = self._transferring and await self._control(
                self._transfer_call(), "transfer"
            )
            if not transferred:
                await self._control(self._hang_up_call(), "hang_up")
        await super().close(code, reason)

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None: ...

    @abstractmethod
    async def clear_audio(self) -> None: ...

    @abstractmethod
    async def _transfer_call(self) -> None: ...

    @abstractmethod
    async def _hang_up_call(self) -> None: ...

    @abstractmethod
    async def _send_digits(self, digits: str) -> None: ...

    async def _control(self, action: Awaitable[None], name: str) -> bool:
        """Carry out ``action``; whether it worked (a failure is logged, not raised)."""
        try:
            await action
        except Exception as exc:
            call_id = self.session.info.call_id if self.session else "?"
            log.warning("call %s: %s failed: %s", call_id, name, exc)
            return False
        return True
