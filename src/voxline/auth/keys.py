"""Secret API keys, hashed at rest, their scopes, and the owner they act for.

A key's owner is whose agent profiles it sees and uses (``voxline.store.agents``): keys of
one owner share its agents, and a browser token minted from a key acts for that key's
owner. Keys made without one belong to ``default``.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row, insert, select, update

from voxline.store.database import Database
from voxline.store.schema import api_keys

KeyEnv = Literal["test", "live"]

SCOPE_SESSION = "omni:session"
SCOPE_ALL = "omni:*"
SCOPE_CALLS_READ = "calls:read"
"""The call records of the key's own sessions."""
SCOPE_CALLS_READ_ALL = "calls:read_all"
"""Every key's call records: an operator's scope."""
SCOPE_SPEECH = "speak:synthesize"
"""``POST /v1/audio/speech``: named as the public SDK names it."""
SCOPE_TRANSCRIPTION = "hear:transcribe"
"""``POST /v1/audio/transcriptions``: named as the public SDK names it."""
SCOPE_AGENTS_READ = "agents:read"
"""List and read the owner's agent profiles."""
SCOPE_AGENTS_WRITE = "agents:write"
"""Create, update and delete the owner's agent profiles (and read them)."""
SCOPE_SERVER_DRAIN = "server:drain"
"""Drain the node: an operator's scope (``POST /admin/drain``)."""
SCOPE_SERVER_READ = "server:read"
"""See the nodes and their processes: an operator's scope (``GET /admin/nodes``)."""
KNOWN_SCOPES = frozenset(
    {
        SCOPE_SESSION,
        SCOPE_ALL,
        SCOPE_CALLS_READ,
        SCOPE_CALLS_READ_ALL,
        SCOPE_SPEECH,
        SCOPE_TRANSCRIPTION,
        SCOPE_AGENTS_READ,
        SCOPE_AGENTS_WRITE,
        SCOPE_SERVER_DRAIN,
        SCOPE_SERVER_READ,
    }
)
_IMPLIED_BY = {
    SCOPE_CALLS_READ: (SCOPE_CALLS_READ_ALL,),
    # Agent profiles are Omni's: every Omni scope grants them.
    SCOPE_AGENTS_READ: (SCOPE_AGENTS_WRITE, SCOPE_ALL),
    SCOPE_AGENTS_WRITE: (SCOPE_ALL,),
    SCOPE_SERVER_READ: (SCOPE_SERVER_DRAIN,),
}
"""The broader scopes that grant a scope too."""

DEFAULT_OWNER = "default"
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")

#: Characters of the secret kept in clear so that people can tell their keys apart.
_DISPLAY_CHARS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    id: str
    env: KeyEnv
    scopes: frozenset[str]
    label: str
    concurrency: int | None
    daily_audio_seconds: float | None
    created_at: float
    revoked_at: float | None
    #: The start of the secret, e.g. ``vx_live_Ab3x``: enough to recognise it, useless to use.
    prefix: str
    owner: str = DEFAULT_OWNER

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def has_scope(self, scope: str) -> bool:
        """Whether the key grants ``scope``; ``ns:*`` grants every ``ns:`` scope (``omni:*``
        the realtime ones and both agents scopes, not speech or transcription),
        ``calls:read_all`` grants ``calls:read``, ``agents:write`` grants ``agents:read``."""
        namespace, _, _ = scope.partition(":")
        broader = (f"{namespace}:*", *_IMPLIED_BY.get(scope, ()))
        return scope in self.scopes or any(other in self.scopes for other in broader)


def _digest(secret: str) -> bytes:
    # A fast hash is right here, unlike for passwords: secrets carry 256 random bits, so
    # there is nothing for a slow hash to protect against a dictionary attack.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


_SELECT = select(
    api_keys.c.id,
    api_keys.c.env,
    api_keys.c.scopes,
    api_keys.c.label,
    api_keys.c.concurrency,
    api_keys.c.daily_audio_seconds,
    api_keys.c.created_at,
    api_keys.c.revoked_at,
    api_keys.c.display_prefix,
    api_keys.c.owner,
)


def _key(row: Row[*tuple[Any, ...]]) -> ApiKey:
    return ApiKey(
        id=row.id,
        env=row.env,
        scopes=frozenset(row.scopes.split()),
        label=row.label,
        concurrency=row.concurrency,
        daily_audio_seconds=row.daily_audio_seconds,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        prefix=row.display_prefix,
        owner=row.owner,
    )


def validate_owner(owner: str) -> str:
    """``owner`` if it is a valid owner name; ``ValueError`` otherwise."""
    if not _OWNER.match(owner):
        raise ValueError(
            "an owner is 1-64 letters, digits and _ . : @ -, starting with a letter or digit"
        )
    return owner


def validate_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; ``ValueError`` if empty or any is unknown."""
    result = frozenset(scopes)
    if not result:
        raise ValueError("a key needs at least one scope")
    unknown = result - KNOWN_SCOPES
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(KNOWN_SCOPES))}"
        )
    return result


class KeyStore:
    """Blocking methods; run them in a worker thread from async code."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        *,
        env: KeyEnv,
        scopes: Iterable[str],
        label: str = "",
        concurrency: int | None = None,
        daily_audio_seconds: float | None = None,
        owner: str = DEFAULT_OWNER,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret. The secret is not stored and cannot be shown again."""
        if env not in ("test", "live"):
            raise ValueError(f"env must be 'test' or 'live', not {env!r}")
        scope_set = validate_scopes(scopes)
        validate_owner(owner)
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if daily_audio_seconds is not None and not (
            math.isfinite(daily_audio_seconds) and daily_audio_seconds > 0
        ):
            raise ValueError("daily_audio_seconds must be a positive number")
        secret = f"vx_{env}_{secrets.token_urlsafe(32)}"
        prefix = secret[: len(f"vx_{env}_") + _DISPLAY_CHARS]
        created_at = time.time()
        with self._db.write() as conn:
            key_id = f"key_{secrets.token_hex(4)}"
            while conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id)).first():
                key_id = f"key_{secrets.token_hex(4)}"
            conn.execute(
                insert(api_keys).values(
                    id=key_id,
                    env=env,
                    secret_digest=_digest(secret),
                    display_prefix=prefix,
                    scopes=" ".join(sorted(scope_set)),
                    label=label,
                    concurrency=concurrency,
                    daily_audio_seconds=daily_audio_seconds,
                    created_at=created_at,
                    owner=owner,
                )
            )
        key = ApiKey(
            id=key_id,
            env=env,
            scopes=scope_set,
            label=label,
            concurrency=concurrency,
            daily_audio_seconds=daily_audio_seconds,
            created_at=created_at,
            revoked_at=None,
            prefix=prefix,
            owner=owner,
        )
        return key, secret

    def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(_SELECT.order_by(api_keys.c.created_at, api_keys.c.id)).all()
        return [_key(row) for row in rows]

    def get(self, key_id: str) -> ApiKey | None:
        with self._db.read() as conn:
            row = conn.execute(_SELECT.where(api_keys.c.id == key_id)).one_or_none()
        return None if row is None else _key(row)

    def revoke(self, key_id: str) -> bool:
        """Revoke a key for good. False if there is no such key or it was already revoked."""
        with self._db.write() as conn:
            result = conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return result.rowcount == 1

    def revoked_since(self, moment: float) -> builtins.list[str]:
        """The ids of the keys revoked at ``moment`` or later."""
        with self._db.read() as conn:
            return list(
                conn.execute(select(api_keys.c.id).where(api_keys.c.revoked_at >= moment))
                .scalars()
                .all()
            )

    def authenticate(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is, or None for anything else.

        The lookup goes through the digest's index; only the final comparison has to be
        constant-time, and timing of the index lookup reveals at most something about a
        digest, which does not help to forge a secret.
        """
        digest = _digest(secret)
        with self._db.read() as conn:
            row = conn.execute(
                _SELECT.add_columns(api_keys.c.secret_digest).where(
                    api_keys.c.secret_digest == digest
                )
            ).one_or_none()
        if row is None or not hmac.compare_digest(row.secret_digest, digest):
            return None
        key = _key(row)
        return None if key.revoked else key
