"""``latlab workers``: the fleet from Redis, as a table or as JSON."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from latlab.coordination.fleet import Fleet, WorkerInfo
from latlab.coordination.redis import open_client
from services import drop_redis_keys, require_redis

BEAT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def latlab_workers(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LATLAB_")}
    command = [sys.executable, "-m", "latlab", "workers", *args]
    return subprocess.run(
        command, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
async def registered() -> AsyncIterator[dict[str, str]]:
    """Two workers in a fleet of the test's own; the environment that names it."""
    url, prefix = require_redis(), f"view-{secrets.token_hex(4)}"
    client = open_client(url, 1.0)
    fleet = Fleet(client, prefix, lease_s=30)
    await fleet.heartbeat(WorkerInfo("w-eu", "eu-1", 4, [("probe", 3)], BEAT))
    await fleet.heartbeat(WorkerInfo("w-us", "us-1", 2, [], BEAT))
    yield {"LATLAB_REDIS_URL": url, "LATLAB_REDIS_PREFIX": prefix}
    await client.aclose()
    await drop_redis_keys(url, prefix)


def test_json_lists_every_live_worker_as_the_api_does(registered: dict[str, str]) -> None:
    done = latlab_workers("--json", env=registered)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "data": [
            {
                "id": "w-eu",
                "location": "eu-1",
                "capacity": 4,
                "jobs": [{"kind": "probe", "id": 3}],
                "last_heartbeat": "2026-12-04T12:00:00+00:00",
            },
            {
                "id": "w-us",
                "location": "us-1",
                "capacity": 2,
                "jobs": [],
                "last_heartbeat": "2026-12-04T12:00:00+00:00",
            },
        ]
    }


def test_the_table_shows_each_worker_and_its_jobs(registered: dict[str, str]) -> None:
    done = latlab_workers(env={**registered, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    assert "2 worker(s)" in done.stdout
    assert "w-eu" in done.stdout
    assert "probe 3" in done.stdout
    assert "us-1" in done.stdout


def test_without_redis_there_is_no_fleet_to_show() -> None:
    done = latlab_workers(env={})
    assert done.returncode == 2
    assert done.stderr == "latlab: no fleet without Redis: set LATLAB_REDIS_URL\n"
