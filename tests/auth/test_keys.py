"""API keys: creation, hashing at rest, scopes, revocation and authentication."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.support.keys import api_key
from voxline.auth.keys import KeyStore
from voxline.store.database import Database
from voxline.store.schema import api_keys


@pytest.fixture
def store(db: Database) -> KeyStore:
    return KeyStore(db)


def test_create_returns_the_secret_once(store: KeyStore) -> None:
    key, secret = store.create(env="test", scopes=["omni:session"], label="laptop")
    assert re.fullmatch(r"key_[0-9a-f]{8}", key.id)
    assert re.fullmatch(r"vx_test_[A-Za-z0-9_-]{43}", secret)
    assert key.prefix == secret[:12]
    assert (key.env, key.scopes, key.label) == ("test", frozenset({"omni:session"}), "laptop")
    assert (key.concurrency, key.daily_audio_seconds, key.revoked_at) == (None, None, None)
    _, live_secret = store.create(env="live", scopes=["omni:*"], concurrency=3)
    assert live_secret.startswith("vx_live_")
    assert live_secret != secret


def test_only_a_digest_of_the_secret_is_stored(db: Database, store: KeyStore) -> None:
    _, secret = store.create(env="live", scopes=["omni:session"])
    random_part = secret.removeprefix("vx_live_")
    with db.read() as conn:
        rows = conn.execute(select(api_keys)).all()
    stored = repr(rows)
    assert random_part[4:12] not in stored
    assert secret not in stored


def test_authenticate(store: KeyStore) -> None:
    key, secret = store.create(
        env="live", scopes=["omni:session"], concurrency=4, daily_audio_seconds=90.5
    )
    store.create(env="live", scopes=["omni:session"])
    assert store.authenticate(secret) == key
    assert store.get(key.id) == key


@pytest.mark.parametrize(
    "attempt",
    [
        "",
        "vx_live_",
        "vx_test_" + "A" * 43,
        "Bearer x",
        "\ud800",
        "\x00",
        "x" * 100_000,
    ],
)
def test_anything_else_fails_to_authenticate(store: KeyStore, attempt: str) -> None:
    _, secret = store.create(env="live", scopes=["omni:session"])
    assert store.authenticate(attempt) is None
    assert store.authenticate(secret[:-1]) is None
    assert store.authenticate(secret + "x") is None
    assert store.authenticate(secret.upper()) is None


def test_revoked_keys_fail_to_authenticate(store: KeyStore) -> None:
    key, secret = store.create(env="test", scopes=["omni:session"])
    assert store.revoke(key.id)
    assert store.authenticate(secret) is None
    revoked = store.get(key.id)
    assert revoked is not None
    assert revoked.revoked
    assert revoked.revoked_at is not None
    assert not store.revoke(key.id)
    assert not store.revoke("key_nothere")


def test_list_every_key_oldest_first(store: KeyStore) -> None:
    assert store.list() == []
    first, _ = store.create(env="test", scopes=["omni:session"], label="a")
    second, _ = store.create(env="live", scopes=["omni:*"], label="b")
    store.revoke(first.id)
    listed = store.list()
    assert [key.id for key in listed] == [first.id, second.id]
    assert listed[0].revoked
    assert store.get("key_nothere") is None


def test_keys_persist_across_reopening(tmp_path: Path) -> None:
    with Database(tmp_path / "voxline.db") as db:
        key, secret = KeyStore(db).create(env="live", scopes=["omni:session", "omni:*"])
    with Database(tmp_path / "voxline.db") as db:
        assert KeyStore(db).authenticate(secret) == key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": ["omni:admin"]}, "unknown scope"),
        ({"scopes": ["omni:session", "billing:read"]}, "billing:read"),
        ({"env": "prod"}, "env"),
        ({"concurrency": 0}, "concurrency"),
        ({"daily_audio_seconds": 0.0}, "daily_audio_seconds"),
        ({"daily_audio_seconds": float("nan")}, "daily_audio_seconds"),
        ({"daily_audio_seconds": float("inf")}, "daily_audio_seconds"),
    ],
)
def test_create_rejects_bad_arguments(
    store: KeyStore, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"env": "test", "scopes": ["omni:session"], **kwargs}
    with pytest.raises(ValueError, match=message):
        store.create(**arguments)  # type: ignore[arg-type]
    assert store.list() == []


def test_scopes() -> None:
    session = api_key(scopes={"omni:session"})
    assert session.has_scope("omni:session")
    assert not session.has_scope("omni:*")
    assert not session.has_scope("omni:admin")
    everything = api_key(scopes={"omni:*"})
    assert everything.has_scope("omni:session")
    assert everything.has_scope("omni:anything")
    assert everything.has_scope("omni:*")
    assert not everything.has_scope("calls:read")
    assert not api_key(scopes=()).has_scope("omni:session")


def test_agents_scopes() -> None:
    """Writing agents grants reading them; every Omni scope (``omni:*``) grants both, since
    agent profiles are Omni's; a session key grants neither."""
    assert api_key(scopes={"agents:write"}).has_scope("agents:read")
    assert not api_key(scopes={"agents:read"}).has_scope("agents:write")
    everything = api_key(scopes={"omni:*"})
    assert everything.has_scope("agents:read") and everything.has_scope("agents:write")
    assert not api_key(scopes={"omni:session"}).has_scope("agents:read")


def test_keys_act_for_an_owner(store: KeyStore) -> None:
    default, _ = store.create(env="test", scopes=["omni:session"])
    acme, secret = store.create(env="test", scopes=["omni:session"], owner="acme")
    assert (default.owner, acme.owner) == ("default", "acme")
    assert store.authenticate(secret) == acme
    with pytest.raises(ValueError, match="an owner is"):
        store.create(env="test", scopes=["omni:session"], owner="not valid")


def test_the_operator_scope_reads_calls_too() -> None:
    own = api_key(scopes={"calls:read"})
    assert own.has_scope("calls:read") and not own.has_scope("calls:read_all")
    operator = api_key(scopes={"calls:read_all"})
    assert operator.has_scope("calls:read") and operator.has_scope("calls:read_all")
    assert not operator.has_scope("omni:session")


def test_keys_are_immutable() -> None:
    key = api_key(scopes={"omni:session"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.label = "changed"  # type: ignore[misc]
