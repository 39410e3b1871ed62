import asyncio
from pathlib import Path

import pytest

from voxline.auth.keys import KeyStore
from voxline.auth.revocations import CLOCK_SKEW, Revocations
from voxline.store.database import Database, DatabaseUnavailable


class CountingKeys(KeyStore):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.asked: list[float] = []

    def revoked_since(self, moment: float) -> list[str]:
        self.asked.append(moment)
        return super().revoked_since(moment)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(db: Database) -> CountingKeys:
    return CountingKeys(db)


async def test_every_call_of_an_interval_shares_one_question_to_the_store(
    keys: CountingKeys,
) -> None:
    clock = Clock()
    revocations = Revocations(keys, interval=2.0, clock=clock)
    live, _ = keys.create(env="test", scopes=["omni:session"])
    # 300 calls checking at once, then again within the interval: one query in all.
    answers = await asyncio.gather(*(revocations.revoked(live.id) for _ in range(300)))
    assert not any(answers)
    clock.now += 1.9
    assert not await revocations.revoked(live.id)
    assert len(keys.asked) == 1
    keys.revoke(live.id)
    clock.now += 0.1
    assert await revocations.revoked(live.id)
    assert len(keys.asked) == 2


async def test_a_revocation_stays_known_and_other_keys_stay_active(keys: CountingKeys) -> None:
    clock = Clock()
    revocations = Revocations(keys, interval=2.0, clock=clock)
    first, _ = keys.create(env="test", scopes=["omni:session"])
    second, _ = keys.create(env="live", scopes=["omni:session"])
    keys.revoke(first.id)
    assert await revocations.revoked(first.id)
    for _ in range(3):
        clock.now += 2.0
        assert await revocations.revoked(first.id)
        assert not await revocations.revoked(second.id)


async def test_each_question_reaches_back_past_the_last_one_by_the_clock_skew(
    keys: CountingKeys,
) -> None:
    clock, wall = Clock(), Clock()
    wall.now = 1_700_000_000.0
    revocations = Revocations(keys, interval=2.0, clock=clock, wall_clock=wall)
    await revocations.revoked("key_x")
    clock.now += 2.0
    wall.now += 2.0
    await revocations.revoked("key_x")
    assert keys.asked == [1_700_000_000.0 - CLOCK_SKEW, 1_700_000_000.0 - CLOCK_SKEW]
    clock.now += 2.0
    wall.now += 2.0
    await revocations.revoked("key_x")
    assert keys.asked[-1] == 1_700_000_002.0 - CLOCK_SKEW


def test_the_store_lists_keys_revoked_since_a_moment(tmp_path: Path) -> None:
    with Database(tmp_path / "k.db") as db:
        store = KeyStore(db)
        early, _ = store.create(env="test", scopes=["omni:session"])
        kept, _ = store.create(env="test", scopes=["omni:session"])
        store.revoke(early.id)
        revoked_at = store.get(early.id).revoked_at  # type: ignore[union-attr]
        assert store.revoked_since(revoked_at - 1) == [early.id]  # type: ignore[operator]
        assert store.revoked_since(revoked_at + 1) == []  # type: ignore[operator]
        assert kept.id not in store.revoked_since(0)


class FlakyKeys(CountingKeys):
    up = True

    def revoked_since(self, moment: float) -> list[str]:
        if not self.up:
            raise DatabaseUnavailable("connection refused")
        return super().revoked_since(moment)


async def test_calls_go_on_while_the_database_is_away_and_see_revocations_made_meanwhile(
    db: Database,
) -> None:
    keys = FlakyKeys(db)
    clock = Clock()
    revocations = Revocations(keys, interval=2.0, clock=clock)
    key, _ = keys.create(env="test", scopes=["omni:session"])
    assert not await revocations.revoked(key.id)
    keys.up = False
    keys.revoke(key.id)  # by another node, on a database this process cannot reach
    for _ in range(3):
        clock.now += 2.0
        assert not await revocations.revoked(key.id)
    keys.up = True
    clock.now += 2.0
    assert await revocations.revoked(key.id)
