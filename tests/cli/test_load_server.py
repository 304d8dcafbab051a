"""``latlab load --server URL [--shards N]``: the run made by a ``latlab serve`` (and its
workers), followed by the command, against a target in this process that counts requests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet import fleet_env, serve_and_workers, workers
from harness import CountingTarget, latlab_serve, wait_for
from proxy import TcpProxy
from services import free_port, require_redis

pytestmark = pytest.mark.timeout(120)


async def start_load(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "latlab", "load", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def load(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await start_load(*args, env=env)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def sending(*args: str) -> tuple[asyncio.subprocess.Process, bytes]:
    """``latlab load ARGS`` once its first second is printed; the process and that line."""
    process = await start_load(*args)
    assert process.stdout is not None
    return process, await asyncio.wait_for(process.stdout.readline(), 30)


async def the_run_id(server: str) -> int:
    async with httpx.AsyncClient(base_url=server) as api:
        return int((await api.get("/api/v1/load-runs")).json()["data"][0]["id"])


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


async def test_shards_on_two_workers_send_exactly_n_and_report_as_a_local_run(
    tmp_path: Path,
) -> None:
    env = fleet_env(require_redis())
    db, out, rows = tmp_path / "latlab.db", tmp_path / "out.json", tmp_path / "out.csv"
    async with CountingTarget() as target:
        one_shard_each = ("--capacity", "1")
        with serve_and_workers(db, env, {"a": one_shard_each, "b": one_shard_each}) as (
            [server],
            _,
        ):
            async with httpx.AsyncClient(base_url=server) as api:

                async def both_up() -> bool:
                    return len(await workers(api)) == 2

                await wait_for(both_up, what="two workers")
            url = f"http://127.0.0.1:{target.port}/"
            args = ("-n", "4001", "-c", "4", "--shards", "2", "--server", server)
            code, stdout, stderr = await load(
                url, *args, "--threshold", "p99<10s", "--json", str(out), "--csv", str(rows)
            )
    assert code == 0, stderr
    report = read_json(out)
    assert report["requests"] == 4001 == target.requests
    assert (report["shards"], report["connections"], report["interrupted"]) == (2, 4, False)
    assert [verdict["ok"] for verdict in report["thresholds"]] == [True]
    csv_lines = rows.read_text().splitlines()
    assert sum(int(line.split(",")[1]) for line in csv_lines[1:]) == 4001
    assert "p99" in stdout


async def test_a_failed_threshold_on_the_server_exits_99(tmp_path: Path) -> None:
    async with CountingTarget() as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            code, _, stderr = await load(
                url,
                "-n",
                "200",
                "-c",
                "2",
                "--threshold",
                "rps>100000000",
                "--server",
                server,
                "-q",
            )
    assert code == 99, stderr
    assert target.requests == 200


async def test_what_the_server_refuses_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Without Redis the server has no workers for shards: its 422, said in one line."""
    async with CountingTarget() as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            code, _, stderr = await load(url, "-n", "10", "--shards", "2", "--server", server)
            async with httpx.AsyncClient(base_url=server) as api:
                created = (await api.get("/api/v1/load-runs")).json()["count"]
    assert code == 2
    assert stderr.strip() == (
        "latlab load: shards: shards need workers: set LATLAB_REDIS_URL and run latlab worker"
    )
    assert (created, target.requests) == (0, 0)


async def test_a_server_that_wants_a_token_says_so_and_takes_latlab_api_token(
    tmp_path: Path,
) -> None:
    token = "s3cret-token-for-the-test"
    async with CountingTarget() as target:
        with latlab_serve(
            tmp_path / "latlab.db", "--no-targets", env={"LATLAB_API_TOKEN": token}
        ) as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            args = (url, "-n", "50", "-c", "1", "--server", server, "-q")
            refused = await load(*args, env={"LATLAB_API_TOKEN": ""})
            accepted = await load(*args, env={"LATLAB_API_TOKEN": token})
    assert refused[0] == 2, refused
    assert refused[2].strip() == "latlab load: the server wants a token: set LATLAB_API_TOKEN"
    assert accepted[0] == 0, accepted[2]
    assert target.requests == 50


async def test_no_server_listening_is_exit_3_and_shards_without_a_server_exit_2() -> None:
    server = f"http://127.0.0.1:{free_port()}"
    unreachable = await load("http://127.0.0.1:9/", "-n", "1", "--server", server)
    alone = await load("http://127.0.0.1:9/", "-n", "1", "--shards", "2")
    assert unreachable[0] == 3  # as every client command says it (found in review: 1)
    assert unreachable[2].startswith(f"latlab load: cannot reach the server at {server}")
    assert alone[0] == 2
    assert "--shards needs --server" in alone[2]


async def test_ctrl_c_stops_the_run_on_the_server_and_prints_what_it_measured(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.json"
    async with CountingTarget(delay_s=0.01) as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            args = ("-d", "30s", "-c", "2", "--server", server, "--json", str(out))
            process, first = await sending(url, *args)
            process.send_signal(signal.SIGINT)
            rest, stderr = await asyncio.wait_for(process.communicate(), 30)
            async with httpx.AsyncClient(base_url=server) as api:
                run = (await api.get("/api/v1/load-runs")).json()["data"][0]
    assert first.startswith(b"second 0:")
    assert process.returncode == 130, stderr
    assert run["state"] == "stopped"
    report = read_json(out)
    assert report["interrupted"] is True
    assert 0 < report["requests"] <= target.requests
    assert b"(interrupted)" in rest


async def test_a_server_away_for_a_moment_is_asked_again_and_the_run_followed_to_its_end(
    tmp_path: Path,
) -> None:
    """Found in review: one failed poll ended the command (exit 1), the run going on."""
    out = tmp_path / "out.json"
    async with CountingTarget(delay_s=0.01) as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            port = int(server.rsplit(":", 1)[1])
            async with TcpProxy("127.0.0.1", port) as proxy:
                url = f"http://127.0.0.1:{target.port}/"
                via = f"http://127.0.0.1:{proxy.port}"
                args = ("-d", "4s", "-c", "2", "--server", via, "--json", str(out))
                process, _ = await sending(url, *args)
                await proxy.cut()
                await asyncio.sleep(1.5)  # away for three polls
                await proxy.restore()
                _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr
    report = read_json(out)
    assert report["interrupted"] is False
    assert 0 < report["requests"] <= target.requests


async def test_a_run_stopped_on_the_server_is_reported_as_interrupted(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    async with CountingTarget(delay_s=0.01) as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            args = ("-d", "30s", "-c", "2", "--server", server, "--json", str(out))
            process, _ = await sending(url, *args)
            run_id = await the_run_id(server)
            async with httpx.AsyncClient(base_url=server) as api:
                await api.post(f"/api/v1/load-runs/{run_id}/stop")
            _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, stderr
    assert read_json(out)["interrupted"] is True


async def test_options_a_server_takes_differently_are_judged_before_anything_is_sent() -> None:
    """Found in review: a repeated header was silently dropped (the API takes a map), and the
    local load limits refused a run the server would have taken."""
    server = f"http://127.0.0.1:{free_port()}"
    target = "http://127.0.0.1:9/"
    repeated = await load(target, "-H", "Cookie: a=1", "-H", "cookie: b=2", "--server", server)
    limited = await load(
        target, "-c", "20", "--server", server, env={"LATLAB_LOAD_MAX_CONNECTIONS": "10"}
    )
    assert repeated[0] == 2
    assert "cookie is repeated" in repeated[2]
    assert limited[0] == 3  # past the local limit, but for the server to judge: not reached
    assert "cannot reach the server" in limited[2]


async def test_a_run_deleted_on_the_server_ends_the_command_at_once_saying_so(
    tmp_path: Path,
) -> None:
    """Found in review: the 404 was retried for 30 s as a lost server."""
    async with CountingTarget(delay_s=0.01) as target:
        with latlab_serve(tmp_path / "latlab.db", "--no-targets") as (_, server):
            url = f"http://127.0.0.1:{target.port}/"
            process, _ = await sending(url, "-d", "30s", "-c", "2", "--server", server)
            run_id = await the_run_id(server)
            async with httpx.AsyncClient(base_url=server) as api:
                await api.delete(f"/api/v1/load-runs/{run_id}")
            _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 1
    assert stderr.decode().strip() == (
        f"latlab load: run {run_id} is gone from the server (deleted there)"
    )
