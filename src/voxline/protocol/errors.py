"""Error codes and what each one means on HTTP and on an upgraded WebSocket (docs/protocol.md,
"Errors and limits")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    NO_STATUS = 1005
    ABNORMAL = 1006
    MESSAGE_TOO_LARGE = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    TOO_MANY_REQUESTS = 4429


@dataclass(frozen=True, slots=True)
class ErrorKind:
    http_status: int
    close_code: CloseCode
    error_type: str


ERRORS: dict[str, ErrorKind] = {
    "unauthorized": ErrorKind(401, CloseCode.UNAUTHORIZED, "authentication_error"),
    "forbidden": ErrorKind(403, CloseCode.FORBIDDEN, "permission_error"),
    "origin_not_allowed": ErrorKind(403, CloseCode.FORBIDDEN, "permission_error"),
    "invalid_agent_id": ErrorKind(400, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "invalid_format": ErrorKind(400, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "invalid_rate": ErrorKind(400, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "invalid_framing": ErrorKind(400, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "invalid_request": ErrorKind(400, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "not_found": ErrorKind(404, CloseCode.BAD_REQUEST, "invalid_request_error"),
    "rate_limit_exceeded": ErrorKind(429, CloseCode.TOO_MANY_REQUESTS, "rate_limit_error"),
    "concurrency_limit_exceeded": ErrorKind(429, CloseCode.TOO_MANY_REQUESTS, "rate_limit_error"),
    "daily_cap_exceeded": ErrorKind(429, CloseCode.TOO_MANY_REQUESTS, "rate_limit_error"),
    "message_too_large": ErrorKind(413, CloseCode.MESSAGE_TOO_LARGE, "invalid_request_error"),
    "session_timeout": ErrorKind(408, CloseCode.NORMAL, "timeout_error"),
    "server_shutting_down": ErrorKind(503, CloseCode.GOING_AWAY, "server_error"),
    "service_unavailable": ErrorKind(503, CloseCode.TRY_AGAIN_LATER, "server_error"),
    "internal_error": ErrorKind(500, CloseCode.INTERNAL_ERROR, "server_error"),
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refusal to open or continue a session, renderable as HTTP or as event + close."""

    code: str
    message: str
    retry_after: float | None = None
    param: str | None = None

    @property
    def kind(self) -> ErrorKind:
        return ERRORS[self.code]

    def http_body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind.error_type,
                "code": self.code,
                "param": self.param,
            }
        }

    def close_reason(self) -> str:
        """WebSocket close reasons are limited to 123 bytes; the code name always fits."""
        return self.code
