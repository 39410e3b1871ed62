"""What phone calls share, through Twilio or FreeSWITCH: the ``configure`` they start with,
and call control (the phone key they spend is admitted by ``Admission.phone``).

A phone has no client to read ``transfer_to_human`` or ``end_call``: the phone line acts on
them. A transfer waits until the caller has heard the agent's line about it (the session ends
after the reply), then hands the call over; any other end of the session hangs up, since a
phone call without its agent is only silence.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable

from starlette.websockets import WebSocket

from voxline.config import Settings
from voxline.protocol import client_frames
from voxline.protocol.client_frames import Configure
from voxline.protocol.events import Event
from voxline.session.session import Session
from voxline.transports.call import CallSocket

log = logging.getLogger(__name__)

TRANSFERRED = "transferred"


def start_configure(settings: Settings, out_rate: int) -> Configure:
    """The configured ``configure`` of phone calls, validated like a client's; the audio
    rate is the phone line's, whatever it says."""
    parsed = client_frames.parse({**settings.phone.configure, "type": "configure"})
    for notice in parsed.notices:
        log.warning("phone configure: %s", notice.get("message"))
    assert isinstance(parsed.frame, Configure)
    return Configure(
        {**parsed.frame.settings, "audio_out": out_rate},
        parsed.frame.unknown,
        parsed.frame.rejected,
    )


class PhoneLine(CallSocket, ABC):
    """A phone call's socket: call-control events become actions on the call.

    Subclasses say how to carry audio and how to act on the call. The destination of a
    transfer is the configured one, never one the agent names: a language model must not
    be able to dial anywhere.
    """

    def __init__(self, websocket: WebSocket) -> None:
        super().__init__(websocket)
        self.session: Session | None = None

    async def send_event(self, event: Event) -> None:
        match event["event"]:
            case "transfer_to_human" if self.session is not None:
                self.session.end_after_reply(TRANSFERRED)
            case "send_dtmf":
                await self._control(self.send_digits(str(event.get("digits", ""))), "send_dtmf")

    async def close(self, code: int, reason: str) -> None:
        """The session ended: transfer the call if that is why (a transfer line the caller
        talked over is no longer one), else hang up."""
        if self.close_code is None:
            if reason == TRANSFERRED:
                await self._control(self.transfer(), "transfer")
            else:
                await self._control(self.hang_up(), "hang_up")
        await super().close(code, reason)

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None: ...

    @abstractmethod
    async def clear_audio(self) -> None: ...

    @abstractmethod
    async def transfer(self) -> None: ...

    @abstractmethod
    async def hang_up(self) -> None: ...

    @abstractmethod
    async def send_digits(self, digits: str) -> None: ...

    async def _control(self, action: Awaitable[None], name: str) -> None:
        try:
            await action
        except Exception as exc:
            call_id = self.session.info.call_id if self.session else "?"
            log.warning("call %s: %s failed: %s", call_id, name, exc)
