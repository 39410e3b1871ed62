"""Call record writes kept through a database outage: in order, retried, bounded."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from voxline.store.database import DatabaseUnavailable
from voxline.store.write_behind import WriteBehind


class Store:
    def __init__(self) -> None:
        self.up = True
        self.rows: list[str] = []

    def write(self, row: str) -> None:
        if not self.up:
            raise DatabaseUnavailable("connection refused")
        if row in self.rows:
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        self.rows.append(row)


async def test_writes_wait_out_an_outage_in_order() -> None:
    store, writes = Store(), WriteBehind()
    await writes.run(lambda: store.write("open 1"))
    store.up = False
    await writes.run(lambda: store.write("open 2"))
    assert len(writes) == 1
    store.up = True
    # Written behind the one still kept, not before it: an end never precedes its start.
    await writes.run(lambda: store.write("end 2"))
    assert store.rows == ["open 1"]
    assert await writes.flush()
    assert store.rows == ["open 1", "open 2", "end 2"]
    assert len(writes) == 0


async def test_a_flush_stops_at_the_first_write_that_still_fails() -> None:
    store, writes = Store(), WriteBehind()
    store.up = False
    await writes.run(lambda: store.write("a"))
    await writes.run(lambda: store.write("b"))
    assert not await writes.flush()
    assert len(writes) == 2


async def test_a_write_applied_before_its_answer_was_lost_counts_as_done() -> None:
    store, writes = Store(), WriteBehind()
    store.rows.append("a")  # committed, but the connection dropped before the answer
    store.up = False
    await writes.run(lambda: store.write("a"))
    store.up = True
    assert await writes.flush()
    assert store.rows == ["a"]


async def test_the_oldest_writes_go_past_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    store, writes = Store(), WriteBehind(limit=2)
    store.up = False
    for row in "abc":
        await writes.run(lambda row=row: store.write(row))
    assert (len(writes), writes.dropped) == (2, 1)
    assert "1 call record write(s) dropped" in caplog.text
    store.up = True
    assert await writes.flush()
    assert store.rows == ["b", "c"]
