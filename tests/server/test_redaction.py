"""Secrets masked out of log lines, whatever logged them."""

from __future__ import annotations

import logging
import logging.config

import pytest

from voxline.server.redaction import log_config, redact

KEY = "vx_live_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdef"
TEST_KEY = "vx_test_Zz9yXw8vUt7sRq6pOn5mLk4jIh3gFe2dCb1a-_xyz"
TOKEN = "vxt_Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHhJjKkLlZzXx"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'127.0.0.1:5 - "WebSocket /v1/omni?api_key={KEY}&rate=16000" [accepted]',
            '127.0.0.1:5 - "WebSocket /v1/omni?api_key=vx_live_Ab...[redacted]&rate=16000" '
            "[accepted]",
        ),
        (
            '"WebSocket /freeswitch/audio?uuid=abc&token=s3cret-stream-token" 403',
            '"WebSocket /freeswitch/audio?uuid=abc&token=[redacted]" 403',
        ),
        ("GET /x?KEY=hunter2 HTTP/1.1", "GET /x?KEY=[redacted] HTTP/1.1"),
        (f"Authorization: Bearer {TEST_KEY}", "Authorization: Bearer vx_test_Zz...[redacted]"),
        ("authorization: bearer not-a-voxline-key", "authorization: bearer [redacted]"),
        (f"offered pyai.v1, pyai-key.{KEY}", "offered pyai.v1, pyai-key.vx_live_Ab...[redacted]"),
        (f"token {TOKEN} expired", "token vxt_Q1...[redacted] expired"),
        (f"voxline_token={TOKEN}", "voxline_token=vxt_Q1...[redacted]"),
        # Nothing secret: left as it was.
        ("GET /v1/calls?limit=50 HTTP/1.1", "GET /v1/calls?limit=50 HTTP/1.1"),
        ("monkey=banana; key_id=key_0a1b2c3d", "monkey=banana; key_id=key_0a1b2c3d"),
    ],
)
def test_secrets_are_masked(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_every_configured_handler_redacts_root_and_uvicorn_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    logging.config.dictConfig(log_config("info"))
    try:
        logging.getLogger("voxline.anything").warning("key %s refused", KEY)
        logging.getLogger("uvicorn.error").info("/v1/omni?api_key=%s", TEST_KEY)
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", f"/x?token={TOKEN}", "1.1", 200
        )
        try:
            raise ValueError(f"bad credential {KEY}")
        except ValueError:
            logging.getLogger("voxline.anything").exception("failed")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name in ("uvicorn", "uvicorn.access"):
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "refused" in output and "GET /x?token=" in output and "ValueError" in output
    for secret in (KEY, TEST_KEY, TOKEN):
        assert secret not in output
        assert redact(secret) in output  # its kind and two characters are kept
