"""A server whose PostgreSQL goes away and comes back: it says it is not ready, refuses
new callers with a clear error, keeps its live calls, and loses none of their records."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.support.api import get
from tests.support.caller import Caller
from tests.support.keys import create_key_with_cli
from tests.support.postgres_server import fresh_database, postgres_server
from tests.support.server import OPEN_LIMITS, run_server
from voxline.store.calls import CallRecords
from voxline.store.database import Database

pytestmark = pytest.mark.e2e


async def test_a_database_outage_refuses_new_callers_and_loses_no_record(tmp_path: Path) -> None:
    with (
        postgres_server() as postgres,
        fresh_database(postgres.url) as url,
        run_server(tmp_path, env=OPEN_LIMITS, database_url=url) as server,
    ):
        _, secret = create_key_with_cli(url, servers=[server.data_dir], scopes=("omni:session",))
        protocols = ["pyai.v1", f"pyai-key.{secret}"]
        live = await Caller.open(server.ws, subprotocols=protocols)
        await live.send_control({"type": "configure"})
        call_id = (await live.wait_for("hello"))["call_id"]
        streaming = asyncio.create_task(live.silence(60))

        postgres.stop()
        ready = await get(server, "/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False

        refused = await Caller.open(server.ws, subprotocols=protocols)
        await refused.send_control({"type": "configure"})
        error = await refused.wait_for("error")
        assert error["code"] == "service_unavailable", error
        assert (await refused.closed()).close_code == 1013
        listing = await get(server, "/v1/calls", secret)
        assert listing.status_code == 503
        assert listing.json()["error"]["code"] == "service_unavailable"
        assert "Retry-After" in listing.headers

        await asyncio.sleep(1)
        assert not streaming.done(), "the live call was cut off"
        streaming.cancel()
        await live.close()
        await asyncio.sleep(0.5)  # its record's end is written, or kept until it can be

        postgres.start()
        deadline = time.monotonic() + 15
        with Database(url) as db:
            while (record := CallRecords(db).get(call_id)) is None or record.ended_at is None:
                assert time.monotonic() < deadline, f"the record of {call_id} was lost: {record}"
                await asyncio.sleep(0.2)
        assert (record.close_code, record.close_reason) == (1000, "client_closed")
        assert (await get(server, "/readyz")).status_code == 200
