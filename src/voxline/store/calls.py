"""Call records: one row per session, written when it starts and completed when it ends."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

from sqlalchemy import Row, bindparam, func, insert, select, update

from voxline.store.database import Database
from voxline.store.schema import calls


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    call_id: str
    key_id: str
    session_label: str | None
    #: The stored agent that served the call (its profile's ``id``), None if it named none.
    agent_id: str | None = None
    transport: str
    started_at: float
    ended_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    audio_in_seconds: float = 0.0
    audio_out_seconds: float = 0.0
    turns: int = 0
    barge_ins: int = 0
    #: The node that served the call (``Settings.node``): the store that opens the record
    #: fills it in.
    node: str | None = None


_FIELDS: Final = tuple(field.name for field in fields(CallRecord))
_SELECT: Final = select(*(calls.c[name] for name in _FIELDS))
_INSERT: Final = insert(calls)
_FINISH: Final = (
    update(calls)
    .where(calls.c.call_id == bindparam("match_call_id"))
    .where(calls.c.ended_at.is_(None))
)


def _record(row: Row[*tuple[Any, ...]]) -> CallRecord:
    return CallRecord(**row._mapping)


class CallRecords:
    """Blocking methods; run them in a worker thread from async code.

    ``server_id`` names the server process that opens records through this object (see
    :mod:`voxline.store.servers`): a row left open when that process is gone is closed as
    ``server_lost`` by the next process to look. ``node`` names the node it runs on.
    """

    def __init__(
        self, db: Database, *, server_id: str | None = None, node: str | None = None
    ) -> None:
        self._db = db
        self._server_id = server_id
        self._node = node

    def open(self, record: CallRecord) -> None:
        """Insert ``record`` as a session starts, so that a crash still leaves a row."""
        row = {name: getattr(record, name) for name in _FIELDS}
        row["server_id"] = self._server_id
        row["node"] = self._node
        with self._db.write() as conn:
            conn.execute(_INSERT, row)

    def finish(
        self,
        call_id: str,
        *,
        ended_at: float,
        close_code: int | None,
        close_reason: str | None,
        audio_in_seconds: float,
        audio_out_seconds: float,
        turns: int,
        barge_ins: int,
        agent_id: str | None = None,
    ) -> bool:
        """Complete an open record. False if there is no such call or it already ended.

        ``agent_id`` names the stored agent the call went on to (a ``configure`` naming
        one); None leaves the record's own."""
        values: dict[str, object] = {
            "match_call_id": call_id,
            "ended_at": ended_at,
            "close_code": close_code,
            "close_reason": close_reason,
            "audio_in_seconds": audio_in_seconds,
            "audio_out_seconds": audio_out_seconds,
            "turns": turns,
            "barge_ins": barge_ins,
        }
        if agent_id is not None:
            values["agent_id"] = agent_id
        with self._db.write() as conn:
            result = conn.execute(_FINISH, values)
            return result.rowcount == 1

    def open_on_node(self) -> int:
        """How many calls of this object's node are open: live, or left by a process that
        died and not yet closed as lost."""
        with self._db.read() as conn:
            return conn.execute(
                select(func.count())
                .select_from(calls)
                .where(calls.c.node == self._node, calls.c.ended_at.is_(None))
            ).scalar_one()

    def get(self, call_id: str, *, key_id: str | None = None) -> CallRecord | None:
        """The call ``call_id``; with ``key_id``, only if it is that key's."""
        query = _SELECT.where(calls.c.call_id == call_id)
        if key_id is not None:
            query = query.where(calls.c.key_id == key_id)
        with self._db.read() as conn:
            row = conn.execute(query).one_or_none()
        return None if row is None else _record(row)

    def recent(self, limit: int = 50, *, key_id: str | None = None) -> list[CallRecord]:
        """The ``limit`` most recently started calls, newest first; with ``key_id``, of
        that key only."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        query = _SELECT.order_by(calls.c.started_at.desc(), calls.c.call_id.desc()).limit(limit)
        if key_id is not None:
            query = query.where(calls.c.key_id == key_id)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_record(row) for row in rows]
