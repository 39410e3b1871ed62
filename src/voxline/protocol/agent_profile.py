"""A stored agent: what a session naming it starts from (docs/api.md, "Agents").

A profile holds ``configure`` settings (persona, greeting, tools, …), a recognition
vocabulary, and knowledge: inline (the knowledge file's JSON, kept as text) or the path of a
knowledge file on the server. Each belongs to an owner, the owner of the keys that may see
and use it. It is the contract's object, apart from where it is kept
(``voxline.store.agents``) and how its values are checked (``voxline.agents.profiles``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from voxline.protocol.client_frames import Configure, check_setting

_FIELDS: Final = frozenset({"name", "vocabulary", "knowledge", "knowledge_file"})
"""The fields of a profile besides its ``configure`` settings."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentProfile:
    id: str
    owner: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    """``configure`` keys to their (valid) JSON values."""
    vocabulary: tuple[str, ...] = ()
    knowledge: str | None = None
    """Inline knowledge: a knowledge file's JSON, as text."""
    knowledge_file: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def configure(self) -> Configure:
        """The profile's settings as a ``configure`` setting them."""
        return Configure.of(**{key: check_setting(key, v) for key, v in self.settings.items()})

    def merged(self, changes: Mapping[str, Any]) -> AgentProfile:
        """This profile with ``changes``: each key set to its value, or unset by ``None``.

        Inline knowledge and a knowledge file exclude each other: setting one unsets the
        other."""
        settings = dict(self.settings)
        fields: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in _FIELDS:
                if value is None:
                    settings.pop(key, None)
                else:
                    settings[key] = value
            elif key == "vocabulary":
                fields[key] = tuple(value or ())
            else:
                fields[key] = value
        if changes.get("knowledge") is not None:
            fields["knowledge_file"] = None
        elif changes.get("knowledge_file") is not None:
            fields["knowledge"] = None
        return replace(self, settings=settings, **fields)
