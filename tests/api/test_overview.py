"""``/api/v1/overview/experiments``: a page of experiments, newest first, each with its last
results and headline figures; filters by state and host; bad queries are 422s.
``/api/v1/overview/load-runs``: a page of load runs, newest first, each with its figures."""

from __future__ import annotations

from typing import Any

import httpx

from harness import wait_for, wait_state
from latlab.api.v1.overview import summary_of
from latlab.jobs.queries import ExperimentQueries
from latlab.storage import Store


async def created(api: httpx.AsyncClient, port: int, **fields: Any) -> int:
    body = {"host": "127.0.0.1", "port": port, "interval_s": 0.01, "count": 8, **fields}
    response = await api.post("/api/v1/experiments", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def completed(api: httpx.AsyncClient, port: int, count: int) -> int:
    experiment_id = await created(api, port, count=count)
    await api.post(f"/api/v1/experiments/{experiment_id}/start")
    await wait_state(api, experiment_id, "completed")
    return experiment_id


async def test_each_experiment_comes_with_its_last_results_and_figures(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    probed = await created(api, targets_port)
    await api.post(f"/api/v1/experiments/{probed}/start")
    await wait_state(api, probed, "completed")
    idle = await created(api, 9, host="localhost")
    page = (await api.get("/api/v1/overview/experiments", params={"recent": 5})).json()
    assert (page["count"], page["offset"], page["limit"]) == (2, 0, 50)
    assert [summary["experiment"]["id"] for summary in page["data"]] == [idle, probed]
    newest, oldest = page["data"]
    assert (newest["recent"], newest["count"], newest["p50_ms"]) == ([], 0, None)
    assert [result["seq"] for result in oldest["recent"]] == [3, 4, 5, 6, 7]
    stats = (await api.get(f"/api/v1/experiments/{probed}/stats")).json()
    assert (oldest["count"], oldest["errors"]) == (8, 0)
    assert (oldest["p50_ms"], oldest["p99_ms"]) == (stats["p50_ms"], stats["p99_ms"])


async def test_filters_and_pages(api: httpx.AsyncClient) -> None:
    ids = [await created(api, 9, host=host) for host in ("a.test", "b.test", "a.test")]
    await api.post(f"/api/v1/experiments/{ids[0]}/stop")

    async def shown(**params: Any) -> list[int]:
        page = (await api.get("/api/v1/overview/experiments", params=params)).json()
        return [summary["experiment"]["id"] for summary in page["data"]]

    assert await shown(host="a.") == [ids[2], ids[0]]
    assert await shown(state="stopped") == [ids[0]]
    assert await shown(state="created", host="a.") == [ids[2]]
    assert await shown(offset=1, limit=1) == [ids[1]]
    assert await shown(host="nowhere") == []
    assert await shown(host="A.TEST") == [ids[2], ids[0]]  # found in review: case mattered


async def test_bad_queries_are_422s(api: httpx.AsyncClient) -> None:
    bad: list[dict[str, str | int]] = [
        {"limit": 0},
        {"limit": 101},
        {"recent": 0},
        {"recent": 101},
        {"offset": -1},
        {"state": "asleep"},
        {"host": "x" * 254},
    ]
    for params in bad:
        response = await api.get("/api/v1/overview/experiments", params=params)
        assert response.status_code == 422, params
    for params in bad[:2] + bad[4:6]:
        response = await api.get("/api/v1/overview/load-runs", params=params)
        assert response.status_code == 422, params


async def test_pages_are_counted_from_the_newest(api: httpx.AsyncClient) -> None:
    ids = [await created(api, 9) for _ in range(5)]

    async def shown(offset: int, limit: int) -> list[int]:
        params = {"offset": offset, "limit": limit}
        page = (await api.get("/api/v1/overview/experiments", params=params)).json()
        assert page["count"] == 5
        return [summary["experiment"]["id"] for summary in page["data"]]

    assert await shown(0, 2) == [ids[4], ids[3]]
    assert await shown(3, 5) == [ids[1], ids[0]]
    assert await shown(5, 5) == []
    assert await shown(99, 1) == []


async def test_an_experiment_deleted_after_the_page_was_read_is_still_summarized(
    store: Store,
) -> None:
    """Found in review: its stats read the experiment again, whose 404 failed the page."""
    spec = {"host": "127.0.0.1", "port": 9, "interval_s": 1, "count": 3}
    job = await store.create_job("probe", spec)
    await store.delete_job("probe", job.id)
    summary = await summary_of(ExperimentQueries(store), job, 5, None)
    assert (summary.experiment.id, summary.recent, summary.count) == (job.id, [], 0)


async def test_an_experiments_percentile_distribution_rises_to_its_maximum(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    probed = await completed(api, targets_port, 20)
    curve = (await api.get(f"/api/v1/experiments/{probed}/percentiles")).json()
    stats = (await api.get(f"/api/v1/experiments/{probed}/stats")).json()
    rows = curve["data"]
    assert curve["count"] == 20
    assert [row["percentile"] for row in rows] == sorted(row["percentile"] for row in rows)
    assert [row["value_ms"] for row in rows] == sorted(row["value_ms"] for row in rows)
    assert rows[-1]["percentile"] == 1.0
    assert rows[-1]["total_count"] == 20
    assert abs(rows[-1]["value_ms"] - stats["max_ms"]) <= stats["max_ms"] * 0.01  # HDR's 3 digits
    assert (await api.get("/api/v1/experiments/999/percentiles")).status_code == 404
    elsewhere = await api.get(f"/api/v1/experiments/{probed}/percentiles", params={"location": "x"})
    assert elsewhere.status_code == 422


async def test_an_experiments_minute_bands_count_every_probe_once(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    probed = await completed(api, targets_port, 30)
    minutes = (await api.get(f"/api/v1/experiments/{probed}/bands")).json()["data"]
    assert 1 <= len(minutes) <= 2  # 30 probes 10 ms apart: one minute, or across its end
    assert sum(band["count"] for band in minutes) == 30
    assert [band["start"] for band in minutes] == sorted(band["start"] for band in minutes)
    for band in minutes:
        assert band["start"].endswith(":00Z")
        figures = [band[key] for key in ("min_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")]
        assert figures == sorted(figures)
    assert (await api.get("/api/v1/experiments/999/bands")).status_code == 404
    elsewhere = await api.get(f"/api/v1/experiments/{probed}/bands", params={"location": "x"})
    assert elsewhere.status_code == 422


async def test_the_most_recent_results_come_oldest_first(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    probed = await completed(api, targets_port, 8)
    recent = (await api.get(f"/api/v1/experiments/{probed}/recent", params={"limit": 3})).json()
    assert ([r["seq"] for r in recent["data"]], recent["count"]) == ([5, 6, 7], 8)
    assert (await api.get("/api/v1/experiments/999/recent")).status_code == 404
    for limit in (0, 1001):
        answer = await api.get(f"/api/v1/experiments/{probed}/recent", params={"limit": limit})
        assert answer.status_code == 422


async def test_each_load_run_comes_newest_first_with_its_figures(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    """Found in review: the overview listed load runs without their p99 (the list has no stats)."""
    url = f"http://127.0.0.1:{targets_port}/api/latency"
    made = [
        (await api.post("/api/v1/load-runs", json={"url": url, "connections": 2, **spec})).json()
        for spec in ({"requests": 300}, {"requests": 10})
    ]
    finished, idle = made[0]["id"], made[1]["id"]
    await api.post(f"/api/v1/load-runs/{finished}/start")
    await wait_for(lambda: ended(api, finished), 30, "the load run to end")
    page = (await api.get("/api/v1/overview/load-runs")).json()
    assert (page["count"], page["offset"], page["limit"]) == (2, 0, 50)
    assert [run["id"] for run in page["data"]] == [idle, finished]
    one = (await api.get(f"/api/v1/load-runs/{finished}")).json()
    assert page["data"][1]["stats"] == one["stats"]
    assert one["stats"]["requests"] == 300
    assert page["data"][0]["stats"]["requests"] == 0
    stopped = await api.get("/api/v1/overview/load-runs", params={"state": "completed"})
    assert [run["id"] for run in stopped.json()["data"]] == [finished]


async def ended(api: httpx.AsyncClient, run_id: int) -> bool:
    state = (await api.get(f"/api/v1/load-runs/{run_id}")).json()["state"]
    return bool(state in ("completed", "stopped", "failed"))
