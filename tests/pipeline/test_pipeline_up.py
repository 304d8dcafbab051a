"""``pipeline up`` in this process: a client call through all four services, checked in the
files the writer leaves."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from latlab.pipeline.services import ALL_ROLES, Pipeline, Role, open_pipeline
from pipeline_files import pipeline_settings, read_table, wait_for_results
from services import free_port


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Pipeline]:
    async with open_pipeline(pipeline_settings(tmp_path), ALL_ROLES) as opened:
        yield opened


async def call_client(pipeline: Pipeline, query: str) -> httpx.Response:
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return await http.get(f"/?{query}")


async def test_200_requests_are_written_once_each_in_receipt_order_in_both_files(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    query = "connection_count=20&connection_value=200&delay_range=40&delay_unit=ms"
    answer = await call_client(pipeline, query)
    assert answer.status_code == 200
    run = answer.json()
    assert (run["sent"], run["acked"], run["errors"]) == (200, 200, 0)
    await wait_for_results(tmp_path / "out", 200)
    receipts = read_table(tmp_path / "out" / "2.txt")
    results = read_table(tmp_path / "out" / "1.txt")
    assert len(receipts) == len(results) == 200
    assert [row[0] for row in receipts] == [row[0] for row in results]
    assert len({row[0] for row in receipts}) == 200
    assert [row[1] for row in receipts] == sorted(row[1] for row in receipts)  # receipt order
    assert [row[1] for row in results] == [row[1] for row in receipts]
    finished = processing_order(tmp_path / "latlab.db")
    assert sorted(finished) == list(range(1, 201))
    assert finished != sorted(finished)  # processing ended out of order; the files did not


def processing_order(database: Path) -> list[int]:
    """The receipts' numbers in the order their processing ended."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT seq FROM pipeline_receipts ORDER BY finished_order").fetchall()
    return [seq for (seq,) in rows]


async def test_bad_client_parameters_get_422_and_send_nothing(pipeline: Pipeline) -> None:
    for query in (
        "connection_count=0",
        "connection_value=-1",
        "delay_range=abc",
        "delay_unit=h",
        "connection_count=1&connection_count=2",
        "surprise=1",
        "connection_value=1000000000",
    ):
        answer = await call_client(pipeline, query)
        assert answer.status_code == 422, query
        assert answer.json()["detail"]
    assert pipeline.receiver is not None
    assert pipeline.receiver.received == 0


async def test_the_ack_comes_before_processing_whatever_the_delay(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    answer = await call_client(pipeline, "connection_count=10&connection_value=50&delay_range=3")
    run = answer.json()
    assert run["acked"] == 50
    assert run["ack_latency_ms"]["p99"] < 50  # delays of 1 and 2 s were asked for
    assert pipeline.handler is not None
    assert pipeline.handler.processed < 50  # answered while work was still waiting
    await asyncio.wait_for(wait_for_results(tmp_path / "out", 50), 10)


async def test_the_clients_stats_show_every_service_of_the_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    await call_client(pipeline, "connection_count=5&connection_value=30&delay_range=0")
    await wait_for_results(tmp_path / "out", 30)
    base = f"http://127.0.0.1:{pipeline.port(Role.CLIENT)}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        stats = (await http.get("/stats")).json()
    assert stats["client"] == {"runs": 1, "acked": 30, "errors": 0}
    assert stats["receiver"]["received"] == 30
    assert stats["handler"]["processed"] == 30
    assert stats["writer"]["results_written"] == 30


async def test_a_service_that_does_not_answer_shows_as_an_error_in_the_stats(
    tmp_path: Path,
) -> None:
    silent = f"http://127.0.0.1:{free_port()}"
    settings = pipeline_settings(tmp_path, pipeline_handler_url=silent)
    async with open_pipeline(settings, [Role.CLIENT]) as alone:
        base = f"http://127.0.0.1:{alone.port(Role.CLIENT)}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            stats = (await http.get("/stats")).json()
    assert stats["client"]["runs"] == 0
    assert "error" in stats["handler"]


async def test_the_services_freeze_their_start_up_objects_only_when_asked(tmp_path: Path) -> None:
    """``LATLAB_FREEZE_GC`` (the default): a full collection in ``pipeline up`` walked them
    about once a second at 5,000 req/s, 43-48 ms each: the acknowledgement p99."""
    gc.unfreeze()  # what an earlier test froze
    try:
        async with open_pipeline(pipeline_settings(tmp_path / "a", freeze_gc=True), ALL_ROLES):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    async with open_pipeline(pipeline_settings(tmp_path / "b"), ALL_ROLES):
        left = gc.get_freeze_count()
    assert frozen > 0
    assert left == 0
