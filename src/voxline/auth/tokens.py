"""Short-lived, origin-locked browser tokens (docs/protocol.md, "REST companions").

A browser must not hold a secret key, so a backend mints a token from one for a single
session: it carries only ``omni:session``, works only from the listed origins, and expires
within minutes. Claims live in the state backend, so every server process sharing it
accepts every token; they are stored under a digest of the token, so reading the backend
does not yield usable tokens.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from voxline.auth.keys import SCOPE_SESSION, ApiKey
from voxline.protocol.connect import MAX_LABEL_CHARS
from voxline.state.backend import StateBackend

TOKEN_PREFIX = "vxt_"
MIN_TTL_SECONDS = 1
MAX_TTL_SECONDS = 600
DEFAULT_TTL_SECONDS = 60
MAX_ALLOWED_ORIGINS = 50

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")

TokenErrorCode = Literal["unauthorized", "forbidden", "origin_not_allowed"]


class TokenError(Exception):
    """A token was refused; ``code`` is the protocol's error code."""

    def __init__(self, code: TokenErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: TokenErrorCode = code


class TokenRequestError(ValueError):
    """An invalid token request; ``param`` names the offending body field, if one."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class TokenRequest:
    allowed_origins: list[str]
    ttl_seconds: int
    session_label: str | None


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    #: Epoch milliseconds, as on the wire.
    expires_at: int
    session_label: str | None
    token_id: str


@dataclass(frozen=True, slots=True)
class TokenClaims:
    #: Identifies the token without revealing it: for leases, logs and call records.
    token_id: str
    key_id: str
    allowed_origins: tuple[str, ...]
    session_label: str | None
    #: Epoch milliseconds.
    expires_at: int


def normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` with the scheme and host lower-cased, IDN hosts in their
    ASCII form and the scheme's default port dropped; ``ValueError`` if it is not one."""
    if "*" in value:
        raise ValueError("wildcards are not allowed; list each origin")
    # urlsplit silently drops tabs and newlines, so reject them before it sees them.
    if _CONTROL_OR_SPACE.search(value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("must start with http:// or https://")
    if parts.path or parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must be scheme://host[:port], without a path, query or fragment")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = _normalize_host(parts.hostname or "")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _normalize_host(host: str) -> str:
    if ":" in host:
        try:
            return f"[{ipaddress.IPv6Address(host)}]"
        except ValueError:
            raise ValueError("has an invalid IPv6 address") from None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError("has an invalid host name") from None
    if not _HOSTNAME.fullmatch(ascii_host):
        raise ValueError("has an invalid host name")
    return ascii_host


def validate_origin(value: object) -> str:
    """One entry of ``allowed_origins``, normalised."""
    if not isinstance(value, str):
        raise TokenRequestError("allowed_origins", "each origin must be a string")
    try:
        return normalize_origin(value)
    except ValueError as exc:
        raise TokenRequestError("allowed_origins", f"origin {value[:100]!r} {exc}") from None


def validate_allowed_origins(value: object) -> list[str]:
    """A non-empty list of origins, normalised and without duplicates."""
    if not isinstance(value, list) or not value:
        raise TokenRequestError(
            "allowed_origins", "allowed_origins must be a non-empty list of scheme://host[:port]"
        )
    if len(value) > MAX_ALLOWED_ORIGINS:
        raise TokenRequestError(
            "allowed_origins", f"at most {MAX_ALLOWED_ORIGINS} origins may be allowed"
        )
    return list(dict.fromkeys(validate_origin(origin) for origin in value))


def validate_ttl_seconds(value: object) -> int:
    """``ttl_seconds``: an integer from 1 to 600; None means the default, 60."""
    if value is None:
        return DEFAULT_TTL_SECONDS
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not MIN_TTL_SECONDS <= value <= MAX_TTL_SECONDS
    ):
        raise TokenRequestError(
            "ttl_seconds",
            f"ttl_seconds must be an integer from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}",
        )
    return value


def validate_session_label(value: object) -> str | None:
    """The optional ``session_label``, under the same rule as on the WebSocket URL."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_LABEL_CHARS or _CONTROL.search(value):
        raise TokenRequestError(
            "session_label",
            f"session_label must be a string of at most {MAX_LABEL_CHARS} characters "
            "without control characters",
        )
    return value


def validate_token_request(payload: object) -> TokenRequest:
    """The JSON body of ``POST /v1/omni/sessions``; unknown fields are ignored."""
    if not isinstance(payload, dict):
        raise TokenRequestError(None, "the request body must be a JSON object")
    return TokenRequest(
        allowed_origins=validate_allowed_origins(payload.get("allowed_origins")),
        ttl_seconds=validate_ttl_seconds(payload.get("ttl_seconds")),
        session_label=validate_session_label(payload.get("session_label")),
    )


def _token_id(token: str) -> str:
    # 128 bits of a SHA-256: unique among tokens, and no way back to the token.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class BrowserTokens:
    def __init__(self, backend: StateBackend, *, clock: Callable[[], float] = time.time) -> None:
        self._backend = backend
        self._clock = clock

    async def mint(
        self,
        key: ApiKey,
        *,
        allowed_origins: Sequence[str],
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        session_label: str | None = None,
    ) -> MintedToken:
        """A token for one session of ``key``, which must be active and hold ``omni:session``.

        Arguments are validated as in :func:`validate_token_request` (``TokenRequestError``).
        """
        if key.revoked or not key.has_scope(SCOPE_SESSION):
            raise TokenError("forbidden", f"the key needs the {SCOPE_SESSION} scope")
        origins = validate_allowed_origins(list(allowed_origins))
        ttl = validate_ttl_seconds(ttl_seconds)
        label = validate_session_label(session_label)
        token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
        token_id = _token_id(token)
        expires_at = int((self._clock() + ttl) * 1000)
        claims = {
            "key_id": key.id,
            "allowed_origins": origins,
            "session_label": label,
            "expires_at": expires_at,
        }
        await self._backend.put(f"token:{token_id}", claims, ttl)
        return MintedToken(token, expires_at, label, token_id)

    async def verify(self, token: str, origin: str | None) -> TokenClaims:
        """The claims of a live token presented from ``origin`` (the ``Origin`` header)."""
        claims = await self._claims(token)
        if claims is None:
            raise TokenError("unauthorized", "unknown or expired session token")
        if origin is None:
            raise TokenError(
                "origin_not_allowed", "session tokens are only accepted with an Origin header"
            )
        try:
            allowed = normalize_origin(origin) in claims.allowed_origins
        except ValueError:
            allowed = False
        if not allowed:
            raise TokenError(
                "origin_not_allowed", "this session token is not valid from this origin"
            )
        return claims

    async def _claims(self, token: str) -> TokenClaims | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        token_id = _token_id(token)
        stored = await self._backend.get(f"token:{token_id}")
        # The backend expires claims too; the check here guards against its rounding.
        if stored is None or stored["expires_at"] <= self._clock() * 1000:
            return None
        return TokenClaims(
            token_id=token_id,
            key_id=stored["key_id"],
            allowed_origins=tuple(stored["allowed_origins"]),
            session_label=stored["session_label"],
            expires_at=stored["expires_at"],
        )
