"""Call records: one row per session, written when it starts and completed when it ends."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any

from voxline.store.database import Database


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    call_id: str
    key_id: str
    session_label: str | None
    transport: str
    started_at: float
    ended_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    audio_in_seconds: float = 0.0
    audio_out_seconds: float = 0.0
    turns: int = 0
    barge_ins: int = 0


_COLUMNS = ", ".join(field.name for field in fields(CallRecord))
_PLACEHOLDERS = ", ".join("?" for _ in fields(CallRecord))


def _record(row: tuple[Any, ...]) -> CallRecord:
    return CallRecord(
        **{field.name: value for field, value in zip(fields(CallRecord), row, strict=True)}
    )


class CallRecords:
    """Blocking methods; run them in a worker thread from async code.

    ``server_id`` names the server process that opens records through this object (see
    :mod:`voxline.store.servers`): a row left open when that process is gone is closed as
    ``server_lost`` by the next process to look.
    """

    def __init__(self, db: Database, *, server_id: str | None = None) -> None:
        self._db = db
        self._server_id = server_id

    def open(self, record: CallRecord) -> None:
        """Insert ``record`` as a session starts, so that a crash still leaves a row."""
        with self._db.write() as conn:
            conn.execute(
                f"INSERT INTO calls ({_COLUMNS}, server_id) VALUES ({_PLACEHOLDERS}, ?)",
                (*astuple(record), self._server_id),
            )

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
    ) -> bool:
        """Complete an open record. False if there is no such call or it already ended."""
        with self._db.write() as conn:
            cursor = conn.execute(
                """
                UPDATE calls SET ended_at = ?, close_code = ?, close_reason = ?,
                    audio_in_seconds = ?, audio_out_seconds = ?, turns = ?, barge_ins = ?
                WHERE call_id = ? AND ended_at IS NULL
                """,
                (
                    ended_at,
                    close_code,
                    close_reason,
                    audio_in_seconds,
                    audio_out_seconds,
                    turns,
                    barge_ins,
                    call_id,
                ),
            )
            return cursor.rowcount == 1

    def get(self, call_id: str, *, key_id: str | None = None) -> CallRecord | None:
        """The call ``call_id``; with ``key_id``, only if it is that key's."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM calls WHERE call_id = ? AND (? IS NULL OR key_id = ?)",
                (call_id, key_id, key_id),
            ).fetchone()
        return None if row is None else _record(row)

    def recent(self, limit: int = 50, *, key_id: str | None = None) -> list[CallRecord]:
        """The ``limit`` most recently started calls, newest first; with ``key_id``, of
        that key only."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM calls WHERE ? IS NULL OR key_id = ? "
                "ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (key_id, key_id, limit),
            ).fetchall()
        return [_record(row) for row in rows]
