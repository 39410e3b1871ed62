"""Stored agent profiles: created, merged field by field, scoped to their owner."""

from __future__ import annotations

import pytest

from voxline.protocol.client_frames import Tool
from voxline.store import agents as agents_module
from voxline.store.agents import AgentStore, TooManyAgents
from voxline.store.database import Database

KNOWLEDGE = '{"entries":[{"question":"Is there parking?","answer":"Yes, behind the building."}]}'


def test_create_get_list_are_the_owners_own(db: Database) -> None:
    store = AgentStore(db)
    desk = store.create("acme", {"name": "Desk", "greeting": "Hello.", "vocabulary": ["Nguyen"]})
    other = store.create("globex", {"name": "Other"})
    assert desk.id.startswith("agent_") and len(desk.id) == len("agent_") + 24
    assert store.get("acme", desk.id) == desk
    assert store.get("globex", desk.id) is None  # another owner's agent is no agent at all
    assert [a.id for a in store.list("acme")] == [desk.id]
    assert [a.id for a in store.list("globex")] == [other.id]
    assert desk.vocabulary == ("Nguyen",)
    assert desk.configure().settings.greeting == "Hello."


def test_update_merges_field_by_field_and_null_unsets(db: Database) -> None:
    store = AgentStore(db)
    created = store.create(
        "acme", {"name": "Desk", "persona": "You are Maya.", "greeting": "Hi.", "kb_token": "t"}
    )
    updated = store.update("acme", created.id, {"greeting": "Hello again.", "kb_token": None})
    assert updated is not None
    assert dict(updated.settings) == {"persona": "You are Maya.", "greeting": "Hello again."}
    assert updated.updated_at >= created.updated_at and updated.created_at == created.created_at
    assert store.get("acme", created.id) == updated
    assert store.update("globex", created.id, {"greeting": "Stolen."}) is None
    assert store.get("acme", created.id) == updated


def test_inline_knowledge_and_a_knowledge_file_exclude_each_other(db: Database) -> None:
    store = AgentStore(db)
    created = store.create("acme", {"name": "Desk", "knowledge": KNOWLEDGE})
    moved = store.update("acme", created.id, {"knowledge_file": "/srv/kb.json"})
    assert moved is not None and (moved.knowledge, moved.knowledge_file) == (None, "/srv/kb.json")
    back = store.update("acme", created.id, {"knowledge": KNOWLEDGE})
    assert back is not None and (back.knowledge, back.knowledge_file) == (KNOWLEDGE, None)


def test_settings_become_the_configure_a_session_starts_from(db: Database) -> None:
    store = AgentStore(db)
    tool = {"name": "book", "description": "Book a visit", "parameters": {"type": "object"}}
    created = store.create(
        "acme", {"name": "Desk", "tools": [tool], "endpointing_ms": 700, "voice_id": "v1"}
    )
    frame = store.get("acme", created.id).configure()  # type: ignore[union-attr]
    assert set(frame.keys) == {"tools", "endpointing_ms", "voice_id"}
    assert frame.settings.tools == (Tool("book", "Book a visit", {"type": "object"}),)
    assert frame.settings.endpointing_ms == 700


def test_delete_only_the_owners_agent(db: Database) -> None:
    store = AgentStore(db)
    created = store.create("acme", {"name": "Desk"})
    assert not store.delete("globex", created.id)
    assert store.delete("acme", created.id)
    assert not store.delete("acme", created.id)
    assert store.get("acme", created.id) is None


def test_an_owner_has_a_bounded_number_of_agents(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agents_module, "MAX_AGENTS_PER_OWNER", 2)
    store = AgentStore(db)
    store.create("acme", {"name": "One"})
    store.create("acme", {"name": "Two"})
    with pytest.raises(TooManyAgents):
        store.create("acme", {"name": "Three"})
    store.create("globex", {"name": "Elsewhere"})
