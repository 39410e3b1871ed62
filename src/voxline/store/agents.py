"""Where agent profiles (:mod:`voxline.protocol.agent_profile`) are kept, per owner.

Values are stored as validated elsewhere (``voxline.agents.profiles``); the store only
merges and keeps them.
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.connect import AGENT_ID_PREFIX
from voxline.store.database import Database

MAX_AGENTS_PER_OWNER: Final = 1000
"""Bounds what one owner's keys can store (a profile may hold a megabyte of knowledge)."""


class TooManyAgents(Exception):
    """The owner already has :data:`MAX_AGENTS_PER_OWNER` agents."""


_COLUMNS: Final = (
    "id, owner, name, settings, vocabulary, knowledge, knowledge_file, created_at, updated_at"
)


def _profile(row: tuple[Any, ...]) -> AgentProfile:
    id_, owner, name, settings, vocabulary, knowledge, knowledge_file, created, updated = row
    return AgentProfile(
        id=id_,
        owner=owner,
        name=name,
        settings=json.loads(settings),
        vocabulary=tuple(json.loads(vocabulary)),
        knowledge=knowledge,
        knowledge_file=knowledge_file,
        created_at=created,
        updated_at=updated,
    )


def _row(profile: AgentProfile) -> tuple[Any, ...]:
    return (
        profile.id,
        profile.owner,
        profile.name,
        json.dumps(dict(profile.settings), ensure_ascii=False),
        json.dumps(list(profile.vocabulary), ensure_ascii=False),
        profile.knowledge,
        profile.knowledge_file,
        profile.created_at,
        profile.updated_at,
    )


class AgentStore:
    """Blocking methods; run them in a worker thread from async code. Every method is
    scoped to an owner: another owner's agent is no agent at all."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, owner: str, fields: Mapping[str, Any]) -> AgentProfile:
        """A new agent of ``owner`` made of ``fields`` (``name`` among them)."""
        now = time.time()
        with self._db.write() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM agents WHERE owner = ?", (owner,)
            ).fetchone()
            if count >= MAX_AGENTS_PER_OWNER:
                raise TooManyAgents
            agent_id = _new_id()
            while conn.execute("SELECT 1 FROM agents WHERE id = ?", (agent_id,)).fetchone():
                agent_id = _new_id()
            blank = AgentProfile(id=agent_id, owner=owner, name="", created_at=now, updated_at=now)
            profile = blank.merged(fields)
            conn.execute(
                f"INSERT INTO agents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _row(profile),
            )
        return profile

    def get(self, owner: str, agent_id: str) -> AgentProfile | None:
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM agents WHERE id = ? AND owner = ?", (agent_id, owner)
            ).fetchone()
        return None if row is None else _profile(row)

    def list(self, owner: str) -> builtins.list[AgentProfile]:
        """The owner's agents, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM agents WHERE owner = ? ORDER BY created_at, id", (owner,)
            ).fetchall()
        return [_profile(row) for row in rows]

    def update(self, owner: str, agent_id: str, changes: Mapping[str, Any]) -> AgentProfile | None:
        """The agent with ``changes`` merged in (see :meth:`AgentProfile.merged`); None if
        the owner has no such agent."""
        with self._db.write() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM agents WHERE id = ? AND owner = ?", (agent_id, owner)
            ).fetchone()
            if row is None:
                return None
            profile = replace(_profile(row).merged(changes), updated_at=time.time())
            conn.execute(
                "UPDATE agents SET name = ?, settings = ?, vocabulary = ?, knowledge = ?, "
                "knowledge_file = ?, updated_at = ? WHERE id = ?",
                (*_row(profile)[2:7], profile.updated_at, agent_id),
            )
        return profile

    def delete(self, owner: str, agent_id: str) -> bool:
        """Delete the agent; False if the owner has no such agent."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "DELETE FROM agents WHERE id = ? AND owner = ?", (agent_id, owner)
            )
            return cursor.rowcount == 1


def _new_id() -> str:
    return f"{AGENT_ID_PREFIX}{secrets.token_hex(12)}"
