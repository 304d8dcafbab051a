"""Reports: one HTML file per experiment or load run that opens with no network at all, from
the API (``…/report.html``) and from ``latlab report`` (which saves the server's)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, expect

from harness import latlab_serve, run_api, wait_state
from latlab.settings import Settings
from latlab.web import reports
from services import free_port

TOKEN = "report-test-token"


async def experiment_done(api: httpx.AsyncClient, port: int, count: int) -> int:
    body = {"host": "127.0.0.1", "port": port, "interval_s": 0.005, "count": count}
    made = await api.post("/api/v1/experiments", json=body)
    experiment_id = int(made.json()["id"])
    await api.post(f"/api/v1/experiments/{experiment_id}/start")
    await wait_state(api, experiment_id, "completed")
    return experiment_id


async def load_run_done(api: httpx.AsyncClient, port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/latency"
    body = {"url": url, "rate": 50, "duration": "2s", "connections": 2}
    made = await api.post("/api/v1/load-runs", json=body, params={"start": True})
    run_id = made.json()["id"]
    for _ in range(200):
        run: dict[str, Any] = (await api.get(f"/api/v1/load-runs/{run_id}")).json()
        if run["state"] == "completed":
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"load run {run_id} did not complete")


async def opened_offline(
    browser: Browser, report: Path, colours: Literal["light", "dark"] = "light"
) -> tuple[list[str], Any]:
    """``report`` opened from disk with every request refused: those it tried, and the page."""
    tried: list[str] = []

    async def refuse(route: Route) -> None:
        if route.request.url.startswith("file://"):
            await route.continue_()  # the report itself
        else:
            tried.append(route.request.url)
            await route.abort()

    page = await browser.new_page(color_scheme=colours)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.route("**/*", refuse)
    await page.goto(report.as_uri())
    await expect(page.locator("body")).to_have_attribute("data-drawn", "yes")
    assert errors == []
    return tried, page


async def load_report_drawn(browser: Browser, report: Path, seconds: int) -> Any:
    """A load run's report opened offline: nothing tried, both charts with every second."""
    tried, page = await opened_offline(browser, report)
    assert tried == []
    charts = page.locator(".chart")
    await expect(charts).to_have_count(2)
    for chart in await charts.all():
        assert await chart.get_attribute("data-points") == str(seconds)
    return page


async def latlab_report(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "latlab", "report", *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_an_experiment_report_is_one_file_that_draws_every_result_offline(
    browser: Browser,
    targets_port: int,
    tmp_path: Path,
    screenshots: Path,
    light_axis_pixels: Callable[[Page, str], Awaitable[int]],
) -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        experiment_id = await experiment_done(api, targets_port, 30)
        answer = await api.get(f"/api/v1/experiments/{experiment_id}/report.html")
        assert answer.status_code == 200
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        out = tmp_path / "experiment.html"
        code, said = await latlab_report(
            "experiment", str(experiment_id), "-o", str(out), "--server", str(api.base_url)
        )
    assert (code, f"experiment {experiment_id}") == (0, said.split(": ", 1)[1].split(",")[0])
    html = out.read_text()
    assert not re.findall(r"""(?:src|href)=["'][^"']""", html)  # nothing to load
    tried, page = await opened_offline(browser, out)
    assert tried == []
    await expect(page.locator(".chart")).to_have_attribute("data-points", "30")
    assert await page.locator(".chart canvas").count() == 1
    await page.screenshot(path=screenshots / "experiment-report.png", full_page=True)
    _, dark = await opened_offline(browser, out, "dark")
    assert await light_axis_pixels(dark, ".chart") > 0  # found in review: black on dark


async def test_a_load_run_report_draws_its_seconds_offline(
    browser: Browser, tmp_path: Path, screenshots: Path
) -> None:
    """From a real ``latlab serve`` and its own targets, as the issue's walk-through asks."""
    targets_port = free_port()
    with latlab_serve(tmp_path / "l.db", "--targets-port", str(targets_port)) as (_, url):
        async with httpx.AsyncClient(base_url=url, timeout=10) as api:
            run = await load_run_done(api, targets_port)
            seconds = (await api.get(f"/api/v1/load-runs/{run['id']}/seconds")).json()["count"]
        out = tmp_path / "run.html"
        code, _ = await latlab_report("load-run", str(run["id"]), "-o", str(out), "--server", url)
    assert code == 0
    page = await load_report_drawn(browser, out, seconds)
    assert await page.locator("#figures dd").first.inner_text() == str(run["stats"]["requests"])
    await page.screenshot(path=screenshots / "load-run-report.png", full_page=True)


async def test_latlab_report_says_why_it_wrote_nothing(tmp_path: Path) -> None:
    settings = Settings(storage_url="memory://", freeze_gc=False, api_token=TOKEN)
    out = tmp_path / "r.html"
    async with run_api(settings) as api:
        server = str(api.base_url)
        assert await latlab_report("experiment", "1", "-o", str(out), "--server", server) == (
            1,
            "latlab: GET /experiments/1/report.html: 401 the server wants a token: --token, or "
            "LATLAB_API_TOKEN\n",
        )
        code, said = await latlab_report(
            "experiment", "7", "-o", str(out), "--server", server, env={"LATLAB_API_TOKEN": TOKEN}
        )
        assert (code, "404" in said) == (1, True)
    code, said = await latlab_report(
        "load-run", "1", "-o", str(out), "--server", f"http://127.0.0.1:{free_port()}"
    )
    assert (code, said.startswith("latlab: cannot reach")) == (3, True)
    code, said = await latlab_report("bot", "1", "-o", str(out))
    assert code == 2
    assert not out.exists()


async def test_latlab_load_writes_the_same_report_of_a_run_made_here(
    browser: Browser, targets_port: int, tmp_path: Path
) -> None:
    out, rows = tmp_path / "load.html", tmp_path / "load.csv"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "latlab", "load", f"http://127.0.0.1:{targets_port}/api/latency",
        "-d", "2s", "--rate", "50", "-c", "2", "--workers", "1", "-q",
        "--report", str(out), "--csv", str(rows),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    seconds = len(rows.read_text().splitlines()) - 1
    page = await load_report_drawn(browser, out, seconds)
    await expect(page.locator("#state")).to_have_text("completed")


async def test_past_the_most_points_a_report_keeps_every_kth_result_in_time_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found in review: the sampling of a long experiment's report was never run."""
    monkeypatch.setattr(reports, "MAX_POINTS", 10)
    start = datetime(2026, 12, 5, tzinfo=UTC)
    rows = [
        SimpleNamespace(
            timestamp=start + timedelta(seconds=seq),
            latency_ms=-1.0 if seq == 3 else seq / 2,
            error="refused" if seq == 3 else None,
        )
        for seq in range(25)
    ]

    async def pages() -> AsyncIterator[list[Any]]:
        for first in range(0, 25, 7):  # pages of 7, as the store reads them
            yield rows[first : first + 7]

    points = await reports.experiment_points(pages(), count=25)
    assert [point[0] - start.timestamp() for point in points] == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert points[1][1:] == [None, "refused"]
    assert points[2][1:] == [3.0, None]
