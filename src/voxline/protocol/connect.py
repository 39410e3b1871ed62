"""Reading the WebSocket upgrade request: credential, subprotocol, audio (docs/protocol.md,
"Connecting")."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from voxline.protocol.digits import parse_decimal
from voxline.protocol.errors import Rejection
from voxline.protocol.frames import Framing

SUBPROTOCOL_MARKER: Final = "pyai.v1"
KEY_SUBPROTOCOL_PREFIX: Final = "pyai-key."
RATES: Final = (8000, 16000, 24000)
DEFAULT_RATE: Final = 24000
MAX_LABEL_CHARS: Final = 256
AGENT_ID_PREFIX: Final = "agent_"
"""An ``agent_id`` (or ``agent``) that starts so names a stored agent profile; any other is
an opaque label, as it has always been."""
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def valid_label(value: str) -> bool:
    """Whether ``value`` may be a session label or agent id: short, no control characters."""
    return len(value) <= MAX_LABEL_CHARS and not _CONTROL_CHARS.search(value)


def names_stored_agent(value: object) -> bool:
    """Whether ``value`` (an ``agent_id``) names a stored agent rather than labelling."""
    return isinstance(value, str) and value.startswith(AGENT_ID_PREFIX)


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    credential: str | None
    credential_source: str | None
    subprotocol: str | None
    rate: int
    label: str | None
    framing: Framing | None
    agent_id: str | None  # the stored agent the session starts from, if it names one
    origin: str | None


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The marker if offered, else the credential entry, else the first offered: never none
    when the client offered any, since browsers and Node clients abort on that."""
    if not offered:
        return None
    if SUBPROTOCOL_MARKER in offered:
        return SUBPROTOCOL_MARKER
    for entry in offered:
        if entry.startswith(KEY_SUBPROTOCOL_PREFIX):
            return entry
    return offered[0]


def find_credential(
    offered: Sequence[str], query: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """First found of: ``pyai-key.<KEY>`` subprotocol, ``?api_key=``, ``Authorization: Bearer``."""
    for entry in offered:
        if entry.startswith(KEY_SUBPROTOCOL_PREFIX) and len(entry) > len(KEY_SUBPROTOCOL_PREFIX):
            return entry[len(KEY_SUBPROTOCOL_PREFIX) :], "subprotocol"
    if query.get("api_key"):
        return query["api_key"], "query"
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), "header"
    return None, None


def parse_connect(
    query: Mapping[str, str], headers: Mapping[str, str], offered: Sequence[str]
) -> ConnectRequest | Rejection:
    """Validate the upgrade's query and headers; ``headers`` keys are lower-case."""
    fmt = query.get("format", "pcm16")
    if fmt != "pcm16":
        return Rejection(
            "invalid_format", f"unsupported format {fmt[:32]!r}; use pcm16", None, "format"
        )
    rate = parse_decimal(query.get("rate", str(DEFAULT_RATE)), min(RATES), max(RATES))
    if rate not in RATES:
        return Rejection("invalid_rate", "rate must be one of 8000, 16000, 24000", None, "rate")
    label = query.get("session_label") or query.get("agent_id") or query.get("agent")
    named = query.get("agent_id") or query.get("agent")
    for value in (label, named):
        if value is not None and not valid_label(value):
            return Rejection(
                "invalid_agent_id",
                f"session label: at most {MAX_LABEL_CHARS} characters, no control characters",
                None,
                "session_label",
            )
    framing_text = query.get("framing")
    framing: Framing | None = None
    if framing_text is not None:
        try:
            framing = Framing(framing_text)
        except ValueError:
            return Rejection("invalid_framing", "framing must be raw or tagged", None, "framing")
    credential, source = find_credential(offered, query, headers)
    return ConnectRequest(
        credential=credential,
        credential_source=source,
        subprotocol=select_subprotocol(offered),
        rate=rate,
        label=label,
        framing=framing,
        origin=headers.get("origin"),
        agent_id=named if names_stored_agent(named) else None,
    )
