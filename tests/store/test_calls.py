"""The call records kept in the database."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy.exc import IntegrityError

from voxline.store.calls import CallRecord, CallRecords
from voxline.store.database import Database


@pytest.fixture
def calls(db: Database) -> CallRecords:
    return CallRecords(db)


def started(call_id: str, started_at: float = 1000.0) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        key_id="key_0123abcd",
        session_label="support",
        transport="omni",
        started_at=started_at,
    )


def test_a_started_call_is_recorded_at_once(calls: CallRecords) -> None:
    calls.open(started("call_1"))
    record = calls.get("call_1")
    assert record == started("call_1")
    assert record is not None
    assert (record.ended_at, record.close_code, record.close_reason) == (None, None, None)
    assert (record.audio_in_seconds, record.audio_out_seconds, record.turns) == (0, 0, 0)
    assert calls.get("call_2") is None


def test_finish_completes_the_record_once(calls: CallRecords) -> None:
    calls.open(started("call_1"))
    finish = {
        "ended_at": 1060.5,
        "close_code": 1000,
        "close_reason": "bye",
        "audio_in_seconds": 31.25,
        "audio_out_seconds": 20.0,
        "turns": 4,
        "barge_ins": 1,
    }
    assert calls.finish("call_1", **finish)  # type: ignore[arg-type]
    record = calls.get("call_1")
    assert record is not None
    assert record == CallRecord(
        call_id="call_1",
        key_id="key_0123abcd",
        session_label="support",
        transport="omni",
        started_at=1000.0,
        ended_at=1060.5,
        close_code=1000,
        close_reason="bye",
        audio_in_seconds=31.25,
        audio_out_seconds=20.0,
        turns=4,
        barge_ins=1,
    )
    assert not calls.finish("call_1", **{**finish, "close_code": 4429})  # type: ignore[arg-type]
    assert calls.get("call_1") == record
    assert not calls.finish("call_2", **finish)  # type: ignore[arg-type]


def test_call_ids_are_unique(calls: CallRecords) -> None:
    calls.open(started("call_1"))
    with pytest.raises(IntegrityError):
        calls.open(started("call_1"))


def test_recent_newest_first(calls: CallRecords) -> None:
    assert calls.recent() == []
    for n, at in enumerate([5.0, 1.0, 3.0, 4.0, 2.0]):
        calls.open(dataclasses.replace(started(f"call_{n}", at), session_label=None))
    assert [r.started_at for r in calls.recent(3)] == [5.0, 4.0, 3.0]
    assert len(calls.recent()) == 5
    assert calls.recent(1)[0].session_label is None
    with pytest.raises(ValueError):
        calls.recent(0)


def test_a_key_reads_only_its_own_calls(calls: CallRecords) -> None:
    for n, key_id in enumerate(["key_a", "key_b", "key_a", "key_b"]):
        calls.open(dataclasses.replace(started(f"call_{n}", float(n)), key_id=key_id))
    assert [r.call_id for r in calls.recent(10, key_id="key_a")] == ["call_2", "call_0"]
    assert [r.call_id for r in calls.recent(1, key_id="key_b")] == ["call_3"]
    assert calls.recent(10, key_id="key_c") == []
    assert len(calls.recent(10)) == 4
    assert calls.get("call_1", key_id="key_b") is not None
    assert calls.get("call_1", key_id="key_a") is None
    assert calls.get("call_1") is not None


def test_an_unfinished_call_survives_a_crash(db: Database) -> None:
    CallRecords(db).open(started("call_1"))
    # No finish, no orderly close: the row is already committed.
    with Database(db.url.render_as_string(hide_password=False)) as other:
        assert CallRecords(other).get("call_1") == started("call_1")


def test_a_record_says_which_node_served_it(db: Database) -> None:
    CallRecords(db, node="node-a").open(started("call_1"))
    record = CallRecords(db).get("call_1")
    assert record is not None and record.node == "node-a"


def test_a_record_says_which_agent_served_it(calls: CallRecords) -> None:
    calls.open(dataclasses.replace(started("call_1"), agent_id="agent_front"))
    calls.open(started("call_2"))
    record = calls.get("call_1")
    assert record is not None and record.agent_id == "agent_front"
    assert calls.recent(1, key_id="key_0123abcd")[0].agent_id is None  # call_2, newest
    assert [r.agent_id for r in calls.recent()] == [None, "agent_front"]


@pytest.mark.parametrize(
    ("at_start", "at_end", "recorded"),
    [
        pytest.param("agent_a", None, "agent_a", id="kept when the call went on with it"),
        pytest.param("agent_a", "agent_b", "agent_b", id="the agent a configure named"),
        pytest.param(None, "agent_b", "agent_b", id="named only once the call started"),
        pytest.param(None, None, None, id="none"),
    ],
)
def test_finish_records_the_agent_the_call_ended_with(
    calls: CallRecords, at_start: str | None, at_end: str | None, recorded: str | None
) -> None:
    calls.open(dataclasses.replace(started("call_1"), agent_id=at_start))
    assert calls.finish(
        "call_1",
        ended_at=1001.0,
        close_code=1000,
        close_reason=None,
        audio_in_seconds=0.0,
        audio_out_seconds=0.0,
        turns=0,
        barge_ins=0,
        agent_id=at_end,
    )
    record = calls.get("call_1")
    assert record is not None and (record.agent_id, record.ended_at) == (recorded, 1001.0)


def test_the_open_calls_of_a_node_are_counted(db: Database) -> None:
    mine, theirs = CallRecords(db, node="node-a"), CallRecords(db, node="node-b")
    for n in range(3):
        mine.open(started(f"call_{n}"))
    theirs.open(started("call_3"))
    finish = {
        "ended_at": 2.0,
        "close_code": 1000,
        "close_reason": None,
        "audio_in_seconds": 0.0,
        "audio_out_seconds": 0.0,
        "turns": 0,
        "barge_ins": 0,
    }
    mine.finish("call_0", **finish)  # type: ignore[arg-type]
    assert (mine.open_on_node(), theirs.open_on_node()) == (2, 1)


async def test_concurrent_use_from_worker_threads(calls: CallRecords) -> None:
    await asyncio.gather(
        *(asyncio.to_thread(calls.open, started(f"call_{n}", float(n))) for n in range(50)),
        *(asyncio.to_thread(calls.recent, 10) for _ in range(20)),
    )
    await asyncio.gather(
        *(
            asyncio.to_thread(
                calls.finish,
                f"call_{n}",
                ended_at=float(n + 1),
                close_code=1000,
                close_reason=None,
                audio_in_seconds=1.0,
                audio_out_seconds=1.0,
                turns=1,
                barge_ins=0,
            )
            for n in range(50)
        )
    )
    records = calls.recent(100)
    assert len(records) == 50
    assert all(r.ended_at == r.started_at + 1 for r in records)
