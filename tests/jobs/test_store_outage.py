"""Store outages: jobs wait and go on, the API answers 503 and changes nothing meanwhile.

A PostgreSQL cluster of the test's own is stopped for 6 s under 10 running experiments and
20 bots; afterwards, without a restart, every experiment ends with exactly its count and
every bot counted on with no gap.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from harness import CountingTarget, run_api, wait_state
from latlab.settings import Settings
from outages import OwnPostgres

OUTAGE_S = 6.0
EXPERIMENTS = 10
BOTS = 20
COUNT = 60
LINE = re.compile(r"bot (\d+): (-?\d+)")


@pytest.fixture
def postgres() -> Iterator[OwnPostgres]:
    with OwnPostgres() as server:
        yield server


def bot_lines(caplog: pytest.LogCaptureFixture) -> dict[int, list[int]]:
    numbers: dict[int, list[int]] = {}
    for record in caplog.records:
        match = LINE.fullmatch(record.getMessage())
        if record.name == "latlab.bots" and match:
            numbers.setdefault(int(match[1]), []).append(int(match[2]))
    return numbers


async def start_all(api: httpx.AsyncClient, port: int) -> list[int]:
    spec = {"host": "127.0.0.1", "port": port, "interval_s": 0.1, "count": COUNT}
    created = await api.post("/api/v1/experiments?start=true", json=[spec] * EXPERIMENTS)
    assert created.status_code == 201, created.text
    for _ in range(BOTS):
        assert (await api.post("/start")).status_code == 201
    return [item["id"] for item in created.json()["data"]]


async def assert_unavailable_and_unchanged(api: httpx.AsyncClient) -> None:
    listed = await api.get("/api/v1/experiments")
    assert listed.status_code == 503
    assert listed.headers["Retry-After"] == "1"
    assert "store is unavailable" in listed.json()["detail"]
    assert (await api.post("/start")).status_code == 503
    assert (
        await api.post("/api/v1/experiments", json={"host": "::1", "port": 1})
    ).status_code == 503


async def test_a_six_second_store_outage_strands_nothing(
    postgres: OwnPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "latlab.bots")
    url = await asyncio.to_thread(postgres.create_database, "latlab")
    settings = Settings(storage_url=url, bots_tick_s=0.25, freeze_gc=False, probe_timeout_s=2)
    async with CountingTarget() as target, run_api(settings) as api:
        ids = await start_all(api, target.port)
        async with postgres.outage():
            await assert_unavailable_and_unchanged(api)
            await asyncio.sleep(OUTAGE_S)
        for experiment_id in ids:
            done = await wait_state(api, experiment_id, "completed", timeout_s=60)
            assert done["done"] == COUNT
            results = await api.get(f"/api/v1/experiments/{experiment_id}/results?limit=1000")
            assert [r["seq"] for r in results.json()["data"]] == list(range(COUNT))
        printed_before = {bot: len(numbers) for bot, numbers in bot_lines(caplog).items()}
        active = (await api.get("/active_bots")).json()["active_bots"]
        await asyncio.sleep(0.6)  # a few more ticks after the outage
    assert sorted(active) == list(range(1, BOTS + 1))  # the 503 start created nothing
    for bot, numbers in bot_lines(caplog).items():
        assert numbers == list(range(len(numbers))), bot  # no gap, no repeat
        assert len(numbers) > printed_before[bot]
