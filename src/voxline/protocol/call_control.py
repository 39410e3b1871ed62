"""Call control: what an agent may ask of the call, typed, and the event each becomes.

A brain decides (``end_call`` after a goodbye), the session carries the decision out once the
line it belongs to has been heard, and the transport acts on it in its own way: an Omni
client gets the event (docs/protocol.md, "Server events"), a phone line transfers, hangs up
or keys the digits itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from voxline.protocol.events import Event


@dataclass(frozen=True, slots=True)
class Transfer:
    """Hand the caller to a person. ``destination`` is the agent's wish; a phone line dials
    only its configured target."""

    destination: str | None = None
    reason: str | None = None
    summary: str | None = None


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str = "completed"


@dataclass(frozen=True, slots=True)
class SendDigits:
    """Key DTMF digits on the far end's phone menu (each one of ``0-9 * # A-D``)."""

    digits: str


CallControl = Transfer | HangUp | SendDigits


def event(action: CallControl) -> Event:
    """The Omni event of ``action``: its name, the arguments that are set spread beside it."""
    match action:
        case Transfer():
            arguments = {
                "destination": action.destination,
                "reason": action.reason,
                "summary": action.summary,
            }
            return {
                "event": "transfer_to_human",
                **{key: value for key, value in arguments.items() if value is not None},
            }
        case HangUp(reason=reason):
            return {"event": "end_call", "reason": reason}
        case SendDigits(digits=digits):
            return {"event": "send_dtmf", "digits": digits}
