from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from clients import metric
from running import serving, settings_for

from latlab.serving.counting import request_cell
from latlab.targets.counters import CELLS, Cell, CountsTable
from serving.http_client import exchange, get, request


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serving(settings_for()) as bound:
        yield bound


def test_processes_mapping_one_file_see_each_others_rows(tmp_path: Path) -> None:
    path = tmp_path / "counts"
    parent = CountsTable.create(path, rows=3)
    worker = CountsTable.attach(path, rows=3)
    cell = request_cell(0, 200)
    worker.row(0)[cell] += 2
    worker.row(1)[cell] += 5
    parent.row(2)[Cell.INFLUX_SENT_POINTS] = 7
    totals = parent.totals()
    assert (len(totals), totals[cell], totals[Cell.INFLUX_SENT_POINTS]) == (CELLS, 7, 7)
    worker.close()
    parent.close()


def test_rows_are_bounded() -> None:
    table = CountsTable.in_memory(rows=1)
    with pytest.raises(IndexError):
        table.row(1)


async def test_metrics_count_by_method_and_status_class_but_not_scrapes(port: int) -> None:
    await exchange(port, get("/?a=1"))
    await exchange(port, get("/status/503"))
    await exchange(port, request("POST", "/", {}, b"{}"))
    await exchange(port, request("HEAD", "/"), head_only=True)
    await exchange(port, request("PATCH", "/"))
    expected = {
        ("GET", "2xx"): 1,
        ("GET", "5xx"): 1,
        ("POST", "4xx"): 1,
        ("HEAD", "2xx"): 1,
        ("other", "4xx"): 1,
    }
    for (method, status_class), count in expected.items():
        name = f'latlab_target_requests_total{{method="{method}",status_class="{status_class}"}}'
        assert await metric(port, name) == count
    answer = await exchange(port, get("/metrics"))
    assert answer.headers["content-type"].startswith("text/plain; version=")
    assert 'method="GET",status_class="2xx"} 1.0' in answer.body.decode()  # scrapes uncounted
    assert "latlab_influx_backlog_points 0.0" in answer.body.decode()
