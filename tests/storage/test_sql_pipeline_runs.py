"""Pipeline runs on SQL (SQLite and the local PostgreSQL): the client's start and end, the
writer's lines merged in, pages newest first, counts from the embedded queue's receipts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from latlab.measure.stats import LatencyHistogram
from latlab.pipeline.queue.sql import SqlQueue
from latlab.pipeline.receipts import Incoming
from latlab.storage.sql.pipeline_runs import PipelineRuns
from latlab.storage.sql.store import SqlStore

pytestmark = pytest.mark.parametrize("store_url", ["sqlite", "postgres"], indirect=True)
T0 = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)


async def _empty_pipeline_tables(url: str) -> None:
    """The session's PostgreSQL database keeps other tests' runs and receipts."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        await conn.execute("TRUNCATE pipeline_runs, pipeline_receipts")
    finally:
        await conn.close()


@pytest.fixture
async def runs(store_url: str) -> AsyncIterator[PipelineRuns]:
    store = await SqlStore.open(store_url)  # migrated: the tables exist
    try:
        if store_url.startswith("postgresql"):
            await _empty_pipeline_tables(store_url)
        yield store.pipeline_runs
    finally:
        await store.close()


def latencies(*values_ms: float) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value_ms in values_ms:
        histogram.record(value_ms)
    return histogram


def figures(payload: str | None) -> tuple[int, float | None, float | None]:
    assert payload is not None
    histogram = LatencyHistogram()
    histogram.add_payload(payload)
    stats = histogram.stats()
    return stats.count, stats.p50_ms, stats.max_ms


async def test_a_run_is_started_then_finished_with_its_ack_latencies(runs: PipelineRuns) -> None:
    await runs.start("r1", 50, 5, T0)
    started = await runs.get("r1")
    assert started is not None
    assert (started.requests, started.connections, started.started_at) == (50, 5, T0)
    assert (started.finished_at, started.sent, started.ack_payload, started.written) == (
        None,
        0,
        None,
        0,
    )
    ack = latencies(1.0, 2.0, 3.0).to_payload()
    await runs.finish("r1", 50, 49, 1, ack, T0 + timedelta(seconds=2))
    run = await runs.get("r1")
    assert run is not None
    assert (run.sent, run.acked, run.errors) == (50, 49, 1)
    assert run.finished_at == T0 + timedelta(seconds=2)
    assert figures(run.ack_payload) == (3, 2.0, 3.0)
    assert await runs.get("unknown") is None


async def test_written_lines_add_up_and_their_latencies_merge(runs: PipelineRuns) -> None:
    await runs.start("r1", 4, 1, T0)
    await runs.add_written({"r1": (2, latencies(1.0, 1.5))}, T0)
    await runs.add_written({"r1": (2, latencies(2.0))}, T0)  # one ERROR line, not timed
    run = await runs.get("r1")
    assert run is not None
    assert run.written == 4
    assert figures(run.e2e_payload) == (3, 1.5, 2.0)


async def test_the_writer_may_record_a_run_the_client_has_not_started_yet(
    runs: PipelineRuns,
) -> None:
    await runs.add_written({"r1": (3, latencies(5.0, 6.0, 7.0))}, T0)
    early = await runs.get("r1")
    assert early is not None
    assert (early.started_at, early.requests, early.written) == (T0, None, 3)
    later = T0 + timedelta(milliseconds=5)
    await runs.start("r1", 3, 2, T0 - timedelta(seconds=1))
    await runs.finish("r1", 3, 3, 0, latencies(1.0).to_payload(), later)
    run = await runs.get("r1")
    assert run is not None
    assert (run.requests, run.connections, run.acked, run.written) == (3, 2, 3, 3)
    assert run.started_at == T0 - timedelta(seconds=1)
    assert figures(run.e2e_payload)[0] == 3


async def test_concurrent_adds_to_one_run_lose_no_line(runs: PipelineRuns) -> None:
    await runs.start("r1", 20, 1, T0)
    await asyncio.gather(
        *(runs.add_written({"r1": (1, latencies(n / 10))}, T0) for n in range(1, 21))
    )
    run = await runs.get("r1")
    assert run is not None
    assert run.written == 20
    assert figures(run.e2e_payload) == (20, 1.0, 2.0)


async def test_pages_are_newest_first_with_the_total(runs: PipelineRuns) -> None:
    for n in range(5):
        await runs.start(f"r{n}", 1, 1, T0 + timedelta(seconds=n))
    page = await runs.page(offset=1, limit=3)
    assert page.total == 5
    assert [run.run_id for run in page.items] == ["r3", "r2", "r1"]
    assert (await runs.page(offset=5, limit=3)).items == []


async def test_received_and_processed_are_counted_from_the_queue_or_null(
    runs: PipelineRuns, store_url: str
) -> None:
    queue = await SqlQueue.open(store_url)
    try:
        sent = [Incoming(str(uuid.uuid4()), 0.0, T0, "r1") for _ in range(3)]
        receipts = await queue.append([*sent, Incoming(str(uuid.uuid4()), 0.0, T0, None)])
        await queue.finish(receipts[0].seq, None)
        await queue.finish(receipts[1].seq, "failed for good")
    finally:
        await queue.close()
    await runs.start("r1", 3, 1, T0)
    await runs.start("r2", 3, 1, T0)  # its queue was Redis: no receipts here
    found = {run.run_id: run for run in (await runs.page(0, 10)).items}
    assert (found["r1"].received, found["r1"].processed) == (3, 2)
    assert (found["r2"].received, found["r2"].processed) == (None, None)
    one = await runs.get("r1")
    assert one is not None
    assert (one.received, one.processed) == (3, 2)
