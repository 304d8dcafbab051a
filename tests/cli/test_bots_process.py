"""Bots through real processes: surviving SIGKILL, and the standalone robot."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest

from harness import bot_numbers, latlab_serve, serve_log, wait_for

TICK_S = 0.1


# As a background job of a non-interactive shell starts: with SIGINT ignored, which exec keeps.
SIGINT_IGNORED = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]


@contextmanager
def robot_process(
    *args: str, sigint_ignored: bool = False
) -> Iterator[tuple[subprocess.Popen[str], IO[str]]]:
    command = [*(SIGINT_IGNORED if sigint_ignored else []), sys.executable, *args]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as robot:
        assert robot.stdout is not None
        try:
            yield robot, robot.stdout
        finally:
            if robot.poll() is None:
                robot.kill()


async def test_sigkill_with_two_bots_alive_and_one_stopped(tmp_path: Path) -> None:
    db, env = tmp_path / "latlab.db", {"LATLAB_BOTS_TICK_S": str(TICK_S)}
    with latlab_serve(db, "--no-targets", env=env) as (process, url):
        async with httpx.AsyncClient(base_url=url) as api:
            a, b, c = [
                (await api.post("/start", json={"start_number": n})).json()["bot_id"]
                for n in (10, 100, 0)
            ]
            assert (await api.get(f"/stop/{c}")).status_code == 204
            before_log = serve_log(db, url)

            async def a_counted() -> bool:
                return len(bot_numbers(before_log, a)) >= 5

            await wait_for(a_counted, what="bot a to count")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    before = {bot: bot_numbers(before_log, bot) for bot in (a, b, c)}
    with latlab_serve(db, "--no-targets", env=env) as (_, url):
        after_log = serve_log(db, url)

        async def both_counted() -> bool:
            return all(len(bot_numbers(after_log, bot)) >= 3 for bot in (a, b))

        await wait_for(both_counted, what="bots a and b to count again")
        async with httpx.AsyncClient(base_url=url) as api:
            history = {h["bot_id"]: h for h in (await api.get("/bots_history")).json()}
            active = (await api.get("/active_bots")).json()["active_bots"]
    for bot in (a, b):
        resumed = bot_numbers(after_log, bot)
        assert resumed[0] in (before[bot][-1], before[bot][-1] + 1)  # at least once, no gap
        assert resumed == list(range(resumed[0], resumed[0] + len(resumed)))
        assert history[bot]["end"] == "still alive"
    assert bot_numbers(after_log, c) == []
    assert history[c]["end"] != "still alive"
    assert history[c]["last_number"] == before[c][-1]
    assert active == [b, a]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "latlab", "bot", "5", "--tick-s", "0.05"],
        ["-m", "latlab.bots", "5", "--tick-s", "0.05"],
    ],
)
def test_robot_prints_from_n_and_exits_0_on_sigint(command: list[str]) -> None:
    with robot_process(*command) as (robot, stdout):
        lines = [stdout.readline().strip() for _ in range(3)]
        robot.send_signal(signal.SIGINT)
        assert robot.wait(timeout=10) == 0
    assert lines == ["5", "6", "7"]


@pytest.mark.parametrize(
    "command", [["-m", "latlab", "bot"], ["-m", "latlab.bots"]], ids=["latlab-bot", "bots"]
)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_robot_started_with_sigint_ignored_still_stops_on_both(
    command: list[str], sig: signal.Signals
) -> None:
    with robot_process(*command, "--tick-s", "0.05", sigint_ignored=True) as (robot, stdout):
        assert stdout.readline().strip() == "0"  # counting: its handlers are in place
        robot.send_signal(sig)
        assert robot.wait(timeout=10) == 0


def test_robot_exits_0_on_sigterm_and_rejects_a_bad_tick() -> None:
    with robot_process("-m", "latlab.bots", "--tick-s", "0.05") as (robot, stdout):
        assert stdout.readline().strip() == "0"
        robot.terminate()
        assert robot.wait(timeout=10) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "latlab.bots", "--tick-s", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "--tick-s must be > 0" in bad.stderr


def test_robot_ticks_once_per_tick_on_the_clock() -> None:
    with robot_process("-m", "latlab.bots", "1", "--tick-s", "0.05") as (robot, stdout):
        stamps = []
        for _ in range(6):
            stdout.readline()
            stamps.append(time.monotonic())
        robot.terminate()
    # Read on this side of a pipe, so the margins are wide; the grid itself is tested in-process.
    gaps = [b - a for a, b in itertools.pairwise(stamps[1:])]
    assert all(0.02 <= gap <= 0.2 for gap in gaps), gaps
