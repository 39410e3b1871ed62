"""Secrets kept out of the logs: every line the server logs, uvicorn's access log included,
passes through :func:`redact` as it is formatted.

Clients may put a credential where a log line shows it: the Omni socket accepts
``?api_key=``, FreeSWITCH's stream URL carries ``?token=``, and an error message may quote
a header. Redacting the formatted line, rather than the places that log, also covers
tracebacks and the lines of libraries. A voxline secret keeps its kind and two characters
(``vx_live_ab...[redacted]``), enough to tell keys apart and useless to anyone reading.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any, Final

import uvicorn.config
import uvicorn.logging

MASK: Final = "[redacted]"
_SECRET_PREFIX = re.compile(r"(?:vx_(?:live|test)_|vxt_)[\w-]{0,2}")
_SECRETS = re.compile(
    # a credential in a query string: ?api_key=…, &token=…, ?key=…, voxline_token=…
    r"(?P<param>(?<![\w-])(?i:api_key|token|key|voxline_token)=)(?P<value>[^&\s\"'#]+)"
    # a credential in a header or subprotocol: Bearer …, pyai-key.…
    r"|(?P<scheme>(?i:bearer)\s+|pyai-key\.)(?P<credential>[^\s\"',;]+)"
    # a voxline secret anywhere: secret keys, browser tokens
    r"|(?P<secret>(?:vx_(?:live|test)_|vxt_)[\w-]+)"
)
LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _mask(secret: str) -> str:
    prefix = _SECRET_PREFIX.match(secret)
    return f"{prefix.group()}...{MASK}" if prefix else MASK


def _replace(match: re.Match[str]) -> str:
    if match["param"] is not None:
        return match["param"] + _mask(match["value"])
    if match["scheme"] is not None:
        return match["scheme"] + _mask(match["credential"])
    return _mask(match["secret"])


def redact(text: str) -> str:
    """``text`` with every credential in it masked."""
    return _SECRETS.sub(_replace, text)


class RedactingFormatter(logging.Formatter):
    """A formatter whose lines are redacted; the base of the others here."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingDefaultFormatter(RedactingFormatter, uvicorn.logging.DefaultFormatter):
    """uvicorn's own lines (``uvicorn.error``), redacted."""


class RedactingAccessFormatter(RedactingFormatter, uvicorn.logging.AccessFormatter):
    """uvicorn's access log, whose request line holds the query string, redacted."""


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with every formatter redacting, and the root logger
    (the server's own loggers) writing to standard error through one as well. uvicorn
    applies it in each worker process it starts too."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["default"]["()"] = f"{__name__}.RedactingDefaultFormatter"
    config["formatters"]["access"]["()"] = f"{__name__}.RedactingAccessFormatter"
    config["formatters"]["plain"] = {"()": f"{__name__}.RedactingFormatter", "fmt": LOG_FORMAT}
    config["handlers"]["root"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["root"], "level": level.upper()}
    return config
