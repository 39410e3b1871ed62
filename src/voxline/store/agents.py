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

from sqlalchemy import ColumnElement, Row, delete, func, insert, select, update

from voxline.protocol.agent_profile import AgentProfile
from voxline.protocol.connect import AGENT_ID_PREFIX
from voxline.store.database import Database
from voxline.store.schema import agents

MAX_AGENTS_PER_OWNER: Final = 1000
"""Bounds what one owner's keys can store (a profile may hold a megabyte of knowledge)."""


class TooManyAgents(Exception):
    """The owner already has :data:`MAX_AGENTS_PER_OWNER` agents."""


_SELECT: Final = select(
    agents.c.id,
    agents.c.owner,
    agents.c.name,
    agents.c.settings,
    agents.c.vocabulary,
    agents.c.knowledge,
    agents.c.knowledge_file,
    agents.c.created_at,
    agents.c.updated_at,
)


def _profile(row: Row[*tuple[Any, ...]]) -> AgentProfile:
    return AgentProfile(
        id=row.id,
        owner=row.owner,
        name=row.name,
        settings=json.loads(row.settings),
        vocabulary=tuple(json.loads(row.vocabulary)),
        knowledge=row.knowledge,
        knowledge_file=row.knowledge_file,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(profile: AgentProfile) -> dict[str, Any]:
    """The columns of ``profile`` a change can touch."""
    return {
        "name": profile.name,
        "settings": json.dumps(dict(profile.settings), ensure_ascii=False),
        "vocabulary": json.dumps(list(profile.vocabulary), ensure_ascii=False),
        "knowledge": profile.knowledge,
        "knowledge_file": profile.knowledge_file,
        "updated_at": profile.updated_at,
    }


class AgentStore:
    """Blocking methods; run them in a worker thread from async code. Every method is
    scoped to an owner: another owner's agent is no agent at all."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, owner: str, fields: Mapping[str, Any]) -> AgentProfile:
        """A new agent of ``owner`` made of ``fields`` (``name`` among them)."""
        now = time.time()
        with self._db.write() as conn:
            count = conn.execute(
                select(func.count()).select_from(agents).where(agents.c.owner == owner)
            ).scalar_one()
            if count >= MAX_AGENTS_PER_OWNER:
                raise TooManyAgents
            agent_id = _new_id()
            while conn.execute(select(agents.c.id).where(agents.c.id == agent_id)).first():
                agent_id = _new_id()
            blank = AgentProfile(id=agent_id, owner=owner, name="", created_at=now, updated_at=now)
            profile = blank.merged(fields)
            conn.execute(
                insert(agents).values(
                    id=profile.id, owner=owner, created_at=profile.created_at, **_values(profile)
                )
            )
        return profile

    def get(self, owner: str, agent_id: str) -> AgentProfile | None:
        with self._db.read() as conn:
            row = conn.execute(_SELECT.where(*_theirs(owner, agent_id))).one_or_none()
        return None if row is None else _profile(row)

    def list(self, owner: str) -> builtins.list[AgentProfile]:
        """The owner's agents, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                _SELECT.where(agents.c.owner == owner).order_by(agents.c.created_at, agents.c.id)
            ).all()
        return [_profile(row) for row in rows]

    def update(self, owner: str, agent_id: str, changes: Mapping[str, Any]) -> AgentProfile | None:
        """The agent with ``changes`` merged in (see :meth:`AgentProfile.merged`); None if
        the owner has no such agent."""
        with self._db.write() as conn:
            row = conn.execute(
                _SELECT.where(*_theirs(owner, agent_id)).with_for_update()
            ).one_or_none()
            if row is None:
                return None
            profile = replace(_profile(row).merged(changes), updated_at=time.time())
            conn.execute(update(agents).where(agents.c.id == agent_id).values(**_values(profile)))
        return profile

    def delete(self, owner: str, agent_id: str) -> bool:
        """Delete the agent; False if the owner has no such agent."""
        with self._db.write() as conn:
            result = conn.execute(delete(agents).where(*_theirs(owner, agent_id)))
            return result.rowcount == 1


def _theirs(owner: str, agent_id: str) -> tuple[ColumnElement[bool], ...]:
    return (agents.c.id == agent_id, agents.c.owner == owner)


def _new_id() -> str:
    return f"{AGENT_ID_PREFIX}{secrets.token_hex(12)}"
