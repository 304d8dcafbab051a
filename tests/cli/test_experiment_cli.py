"""``latlab experiment …`` against a real server: create, list, show, drive and watch, and
the exit statuses of a refusal (1) and of a server that cannot be reached (3)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness import CountingTarget, run_api, wait_state
from latlab import __version__
from latlab.settings import Settings
from latlab.web import assets
from services import free_port

TOKEN = "cli-client-token"
WITHOUT_UPLOT = """
import sys
from pathlib import Path
import latlab.web.assets as assets
from latlab.cli.main import main
assets.NODE_MODULES = assets.PACKAGED_VENDOR = Path(sys.argv.pop(1))  # where nothing is
main()
"""


async def latlab(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "latlab", *args,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def json_of(*args: str, env: dict[str, str] | None = None) -> Any:
    code, out, err = await latlab(*args, "--json", env=env)
    assert code == 0, err
    return json.loads(out)


async def test_create_list_show_drive_and_watch(targets_port: int) -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        server = ["--server", str(api.base_url)]
        made = await json_of(
            "experiment", "create", "--host", "127.0.0.1", "--port", str(targets_port),
            "--interval", "0.05", "--count", "20", *server,
        )  # fmt: skip
        assert (made["state"], made["settings"]["count"]) == ("created", 20)
        listed = await json_of("experiment", "ls", *server)
        assert [e["id"] for e in listed["data"]] == [made["id"]]
        started = await json_of("experiment", "start", str(made["id"]), *server)
        # Watched from while it runs (found in review: only ended ones were): it follows it
        # to its end, or it could not say 20 of 20.
        assert started["state"] == "running"
        code, out, _ = await latlab("experiment", "watch", str(made["id"]), *server)
        assert code == 0
        assert "20/20 probes" in out
        shown = await json_of("experiment", "show", str(made["id"]), *server)
        assert (shown["experiment"]["state"], shown["stats"]["count"]) == ("completed", 20)
        code, out, _ = await latlab("experiment", "ls", "--state", "completed", *server)
        assert (code, str(made["id"]) in out, "completed" in out) == (0, True, True)


async def test_pause_and_stop_reach_the_server(targets_port: int) -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        server = ["--server", str(api.base_url)]
        made = await json_of(
            "experiment", "create", "--host", "127.0.0.1", "--port", str(targets_port),
            "--interval", "1", "--count", "100", "--start", *server,
        )  # fmt: skip
        assert (await json_of("experiment", "pause", str(made["id"]), *server))["state"] == "paused"
        await wait_state(api, made["id"], "paused")
        assert (await json_of("experiment", "stop", str(made["id"]), *server))["state"] == "stopped"
        code, _, _ = await latlab("experiment", "watch", str(made["id"]), *server)
        assert code == 1  # it ended without completing


async def test_a_refusal_exits_1_with_the_servers_reason_and_unreachable_exits_3() -> None:
    settings = Settings(storage_url="memory://", freeze_gc=False, api_token=TOKEN)
    async with run_api(settings) as api:
        server = ["--server", str(api.base_url)]
        code, _, err = await latlab("experiment", "ls", *server)
        assert (code, err) == (
            1,
            "latlab: GET /experiments: 401 the server wants a token: --token, or "
            "LATLAB_API_TOKEN\n",
        )
        token = {"LATLAB_API_TOKEN": TOKEN}
        code, _, err = await latlab("experiment", "show", "42", *server, env=token)
        assert (code, "404" in err) == (1, True)
        # --token, and LATLAB_SERVER for --server (found in review: neither was used)
        code, out, err = await latlab(
            "experiment", "ls", "--json", "--token", TOKEN,
            env={"LATLAB_SERVER": str(api.base_url), "LATLAB_API_TOKEN": ""},
        )  # fmt: skip
        assert (code, json.loads(out)["count"]) == (0, 0), err
        code, _, err = await latlab(
            "experiment", "create", "--host", "127.0.0.1", "--port", "9", "--interval",
            "0.00001", *server, env=token,
        )  # fmt: skip
        assert (code, "interval_s" in err) == (1, True)
        assert (await api.get("/api/v1/experiments", headers=_bearer())).json()["count"] == 0
    code, _, err = await latlab("experiment", "ls", "--server", f"http://127.0.0.1:{free_port()}")
    assert (code, err.startswith("latlab: cannot reach")) == (3, True)


def _bearer() -> httpx.Headers:
    return httpx.Headers({"Authorization": f"Bearer {TOKEN}"})


async def test_version_flag_and_every_help_shows_defaults() -> None:
    code, out, _ = await latlab("--version")
    assert (code, out.strip()) == (0, __version__)
    code, out, _ = await latlab("experiment", "create", "--help")
    assert code == 0
    assert "default: 10" in out  # --count
    assert "LATLAB_SERVER" in out


async def test_load_run_commands_list_show_retune_and_watch(targets_port: int) -> None:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        server = ["--server", str(api.base_url)]
        url = f"http://127.0.0.1:{targets_port}/api/latency"
        body = {"url": url, "rate": 20, "duration": "2s", "connections": 2}
        made = await api.post("/api/v1/load-runs", json=body, params={"start": True})
        run_id = str(made.json()["id"])
        retuned = await json_of("load-run", "set", run_id, "--rate", "40", *server)
        assert retuned["progress"]["rate"] == 40
        code, out, err = await latlab("load-run", "watch", run_id, *server)
        assert code == 0, err
        assert f"load run {run_id}: completed" in out
        listed = await json_of("load-run", "ls", *server)
        assert [run["id"] for run in listed["data"]] == [int(run_id)]
        shown = await json_of("load-run", "show", run_id, *server)
        assert shown["stats"]["requests"] == shown["progress"]["requests"] > 0
        code, _, err = await latlab("load-run", "set", run_id, "--rate", "50", *server)
        assert (code, "409" in err) == (1, True)  # over: nothing to retune
        code, _, err = await latlab("load-run", "set", run_id, *server)
        assert code == 2


async def answering(status: int) -> tuple[asyncio.Server, str]:
    """A server that answers every request with ``status`` and a page, as a proxy does."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        page = b"<html>not here</html>"
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(page)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + page)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_what_is_not_a_latlab_answer_gets_its_own_exit_status() -> None:
    """Found in review: a 502 from a proxy was "refused" (1), not unreachable (3); a 200
    page that is no JSON was a traceback; a token with a line ending was printed."""
    for status, code, said in [(502, 3, "502 from a proxy"), (200, 1, "not a LatLab server")]:
        server, url = await answering(status)
        async with server:
            found = await latlab("experiment", "ls", "--server", url)
            # Found in review: latlab load --server said 1 where the client commands say 3.
            loaded = await latlab("load", "http://127.0.0.1:9/", "-n", "1", "--server", url)
        assert (found[0], said in found[2], "Traceback" in found[2]) == (code, True, False)
        assert (loaded[0], "Traceback" in loaded[2]) == (code, False), loaded[2]
    code, _, err = await latlab(
        "experiment", "ls", "--server", f"http://127.0.0.1:{free_port()}",
        env={"LATLAB_API_TOKEN": "s3cret-token\r"},
    )  # fmt: skip
    assert (code, "s3cret" in err, "line ending" in err) == (2, False, True)
    code, _, err = await latlab("experiment", "ls", "--server", "http://127.0.0.1:80x")
    assert (code, "Traceback" in err) == (2, False)


async def test_a_load_the_server_cannot_take_leaves_no_claimed_file(tmp_path: Path) -> None:
    """Found in review: a refusal of --server's spec left the files it had claimed empty."""
    report, summary = tmp_path / "r.html", tmp_path / "s.json"
    code, _, err = await latlab(
        "load", "http://127.0.0.1:9/", "-n", "1", "-H", "X-A: 1", "-H", "X-A: 2",
        "--server", "http://127.0.0.1:9", "--report", str(report), "--json", str(summary),
    )  # fmt: skip
    assert (code, "one value a header" in err) == (2, True)
    assert not report.exists()
    assert not summary.exists()


async def test_a_report_without_the_chart_library_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    """latlab load --report FILE.html without uPlot installed: exit 2 before the run (it used
    to be found missing only once the load was sent)."""
    report = tmp_path / "r.html"
    async with CountingTarget() as target:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WITHOUT_UPLOT, str(tmp_path / "absent"), "load", f"http://127.0.0.1:{target.port}/",
            "-n", "5", "--report", str(report),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
    assert (process.returncode, "make install" in err.decode()) == (2, True), err.decode()
    assert (target.requests, report.exists()) == (0, False)


async def test_a_report_the_server_cannot_make_says_why_not_a_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: the server's 503 "run make install" was called a proxy's, its reason
    hidden. Still exit 3 (unavailable, as the store's own 503 while it is away)."""
    monkeypatch.setattr(assets, "NODE_MODULES", tmp_path / "absent")
    monkeypatch.setattr(assets, "PACKAGED_VENDOR", tmp_path / "absent")
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as api:
        body = {"host": "127.0.0.1", "port": 9, "interval_s": 1, "count": 1}
        experiment_id = (await api.post("/api/v1/experiments", json=body)).json()["id"]
        report = tmp_path / "r.html"
        code, _, err = await latlab(
            "report", "experiment", str(experiment_id), "-o", str(report),
            "--server", str(api.base_url),
        )  # fmt: skip
    assert (code, "make install" in err, "proxy" in err) == (3, True, False), err
    assert not report.exists()


async def test_create_with_start_is_one_request_that_leaves_nothing_when_refused() -> None:
    """Found in review: --start was a create then a start, so a refused start (too many
    running) left a created experiment behind."""
    settings = Settings(storage_url="memory://", freeze_gc=False, max_running_jobs=1)
    async with run_api(settings) as api:
        server = ["--server", str(api.base_url)]
        target = ["--host", "127.0.0.1", "--port", "9", "--interval", "60", "--count", "2"]
        made = await json_of(
            "experiment", "create", *target, "--start", "--method", "HEAD", *server
        )
        assert (made["state"], made["settings"]["method"]) == ("running", "HEAD")
        code, _, err = await latlab("experiment", "create", *target, "--start", *server)
        assert (code, "429" in err) == (1, True), err
        assert (await api.get("/api/v1/experiments")).json()["count"] == 1
