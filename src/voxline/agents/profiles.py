"""Agent profiles as clients write them (the agents API, ``voxline agents``), checked field
by field, and the knowledge a profile grounds the default agent's answers with.

A profile's ``configure`` settings are checked by the rules and with the messages of
``configure`` itself; ``knowledge`` by those of a knowledge file. A knowledge file path can
only be set on the server's own machine (``voxline agents``): over HTTP it would let a key
holder have the server read its files.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any, Final

from voxline.engines.knowledge import KnowledgeBase, KnowledgeFileError
from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.client_frames import CONFIGURE_KEYS, check_setting
from voxline.protocol.connect import valid_label

log = logging.getLogger(__name__)

SETTINGS: Final = CONFIGURE_KEYS - {"audio_out", "metrics"}
"""The ``configure`` keys a profile holds: all but those of one connection's own."""
READ_ONLY: Final = frozenset(
    {"object", "id", "agent_id", "owner", "created_at", "updated_at", "kb_token_set"}
)
"""Fields of the API's agent object that a write ignores, so that one read can be sent back."""
ALIASES: Final = {"instructions": "persona"}
MAX_NAME_CHARS: Final = 256
MAX_VOCABULARY: Final = 100
MAX_TERM_CHARS: Final = 100


class ProfileError(ValueError):
    """A field of a profile is not valid: ``param`` names it."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def changes(payload: Any, *, creating: bool, files: bool = False) -> dict[str, Any]:
    """The changes ``payload`` (a JSON object) makes to a profile: each field to its valid
    value, or to ``None`` to unset it. ``files``: a knowledge file path may be set (on the
    server's machine only). Raises :class:`ProfileError`."""
    if not isinstance(payload, dict):
        raise ProfileError("the body must be a JSON object", None)
    out: dict[str, Any] = {}
    for given, value in payload.items():
        key = ALIASES.get(given) or str(given)
        if key in READ_ONLY:
            continue
        if key in out:
            raise ProfileError(f"{given} and persona are the same field; send one", given)
        if value is None and key != "name":
            out[key] = None
        elif key == "name":
            out[key] = _name(value)
        elif key in SETTINGS:
            out[key] = _setting(key, value)
        elif key == "vocabulary":
            out[key] = _vocabulary(value)
        elif key == "knowledge":
            out[key] = _knowledge(value)
        elif key == "knowledge_file" and files:
            out[key] = _knowledge_file(value)
        elif key == "knowledge_file":
            raise ProfileError(
                "knowledge_file can be set only on the server (voxline agents); "
                "send knowledge inline",
                key,
            )
        else:
            raise ProfileError(f"unknown field {given[:64]!r}", given[:64])
    if out.get("knowledge") is not None and out.get("knowledge_file") is not None:
        raise ProfileError("send knowledge or knowledge_file, not both", "knowledge")
    if creating and "name" not in out:
        raise ProfileError("name is required", "name")
    return out


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProfileError("name must be a non-empty string", "name")
    if len(value) > MAX_NAME_CHARS or not valid_label(value):
        raise ProfileError(
            f"name must be at most {MAX_NAME_CHARS} characters, without control characters",
            "name",
        )
    return value.strip()


def _setting(key: str, value: Any) -> Any:
    try:
        check_setting(key, value)
    except ValueError as exc:
        raise ProfileError(str(exc), key) from None
    return value


def _vocabulary(value: Any) -> list[str]:
    """Words and phrases to bias recognition with, as given (repeats dropped)."""
    if not isinstance(value, list) or len(value) > MAX_VOCABULARY:
        raise ProfileError(
            f"vocabulary must be a list of at most {MAX_VOCABULARY} words or phrases",
            "vocabulary",
        )
    terms: dict[str, str] = {}
    for term in value:
        if not isinstance(term, str) or not term.strip():
            raise ProfileError("vocabulary entries must be non-empty strings", "vocabulary")
        if len(term) > MAX_TERM_CHARS or not valid_label(term):
            raise ProfileError(
                f"vocabulary entries must be at most {MAX_TERM_CHARS} characters, "
                "without control characters",
                "vocabulary",
            )
        terms.setdefault(term.strip().casefold(), " ".join(term.split()))
    return list(terms.values())


def _knowledge(value: Any) -> str:
    """Inline knowledge as its stored text, checked (and indexed, for the sessions to come)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        inline_knowledge(text)
    except KnowledgeFileError as exc:
        raise ProfileError(f"knowledge: {exc}", "knowledge") from None
    return text


def _knowledge_file(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ProfileError("knowledge_file must be a path", "knowledge_file")
    path = Path(value).expanduser().resolve()
    try:
        KnowledgeBase.load(path)
    except KnowledgeFileError as exc:
        raise ProfileError(str(exc), "knowledge_file") from None
    return str(path)


@functools.lru_cache(maxsize=64)
def inline_knowledge(text: str) -> KnowledgeBase:
    """Inline knowledge, indexed once however many sessions use it."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise KnowledgeFileError(f"not JSON: {exc}") from exc
    return KnowledgeBase.from_dict(data)


def knowledge_of(profile: AgentProfile) -> KnowledgeBase | None:
    """The profile's knowledge, indexed (cached: a file's until it changes); None if it has
    none or its file cannot be read (logged), so the call goes on without it."""
    try:
        if profile.knowledge is not None:
            return inline_knowledge(profile.knowledge)
        if profile.knowledge_file is not None:
            return KnowledgeBase.load(profile.knowledge_file)
    except KnowledgeFileError as exc:
        log.error("agent %s: its knowledge cannot be used: %s", profile.id, exc)
    return None


def as_json(profile: AgentProfile) -> dict[str, Any]:
    """The API's agent object. The ``kb_token`` is a secret of the client's: never shown,
    only whether one is set."""
    settings = {key: value for key, value in profile.settings.items() if key != "kb_token"}
    return {
        "object": "agent",
        "id": profile.id,
        "agent_id": profile.id,
        "name": profile.name,
        **{key: settings.get(key) for key in sorted(SETTINGS - {"kb_token"})},
        "kb_token_set": "kb_token" in profile.settings,
        "vocabulary": list(profile.vocabulary),
        "knowledge": None if profile.knowledge is None else json.loads(profile.knowledge),
        "knowledge_file": profile.knowledge_file,
        "created_at": int(profile.created_at),
        "updated_at": int(profile.updated_at),
    }
