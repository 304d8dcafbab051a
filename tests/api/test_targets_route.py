"""``/api/v1/targets``: the built-in targets' answers, read from their counters in the same
process (``latlab serve``), and an honest "not here" from an app without them."""

from __future__ import annotations

from pathlib import Path

import httpx

from harness import latlab_serve, run_api
from latlab.settings import Settings
from services import free_port


async def test_an_app_without_the_targets_says_they_are_not_here() -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        found = (await api.get("/api/v1/targets")).json()
    assert (found["here"], found["port"], found["requests"]) == (False, None, 0)
    assert set(found["by_method"]) == {"GET", "HEAD", "POST", "other"}


async def test_latlab_serve_counts_every_answer_of_its_targets(tmp_path: Path) -> None:
    targets_port = free_port()
    with latlab_serve(tmp_path / "l.db", "--targets-port", str(targets_port)) as (_, url):
        async with httpx.AsyncClient(timeout=10) as http:
            target = f"http://127.0.0.1:{targets_port}"
            for path in ["/api/latency", "/api/latency", "/status/404"]:
                await http.get(target + path)
            await http.post(target + "/api/latency")
            found = (await http.get(f"{url}/api/v1/targets")).json()
    assert (found["here"], found["port"], found["requests"]) == (True, targets_port, 4)
    assert (found["by_method"]["GET"]["2xx"], found["by_method"]["GET"]["4xx"]) == (2, 1)
    assert sum(found["by_method"]["POST"].values()) == 1
