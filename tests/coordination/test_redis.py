"""Two API processes on one database, coordinated through the local Redis."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest
import redis

from harness import bot_numbers, latlab_serve, serve_log, wait_for
from latlab.coordination import open_coordinator
from services import require_redis


@pytest.fixture
def env() -> dict[str, str]:
    return {
        "LATLAB_REDIS_URL": require_redis(),
        "LATLAB_REDIS_PREFIX": f"latlab-test-{secrets.token_hex(4)}",
        "LATLAB_BOTS_TICK_S": "0.05",
    }


async def test_two_processes_share_active_bots_and_stops(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "latlab.db"
    with (
        latlab_serve(db, "--no-targets", env=env) as (_, url_a),
        latlab_serve(db, "--no-targets", env=env) as (_, url_b),
    ):
        async with httpx.AsyncClient(base_url=url_a) as a, httpx.AsyncClient(base_url=url_b) as b:
            first = (await a.post("/start")).json()["bot_id"]
            second = (await b.post("/start", json={"start_number": 5})).json()["bot_id"]
            third = (await a.post("/start")).json()["bot_id"]
            expected = {"active_bots": [third, second, first]}
            assert (await a.get("/active_bots")).json() == expected
            assert (await b.get("/active_bots")).json() == expected

            assert (await b.get(f"/stop/{first}")).status_code == 204  # runs in process A
            assert (await a.get("/active_bots")).json() == {"active_bots": [third, second]}
            log_a = serve_log(db, url_a)
            printed = len(bot_numbers(log_a, first))

            async def a_ticked_on() -> bool:
                return len(bot_numbers(log_a, third)) >= printed + 4

            await wait_for(a_ticked_on, what="process A to tick on")
            assert len(bot_numbers(log_a, first)) <= printed + 1  # at most the tick in flight
            history = (await a.get("/bots_history")).json()
    assert [h["end"] == "still alive" for h in history] == [False, True, True]


async def test_a_live_process_takes_over_the_bots_of_one_that_left(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "latlab.db"
    with latlab_serve(db, "--no-targets", env=env) as (_, url_b):
        with latlab_serve(db, "--no-targets", env=env) as (process_a, url_a):
            async with httpx.AsyncClient(base_url=url_a) as a:
                bot = (await a.post("/start", json={"start_number": 50})).json()["bot_id"]
            log_a = serve_log(db, url_a)

            async def counted() -> bool:
                return len(bot_numbers(log_a, bot)) >= 3

            await wait_for(counted, what="the bot to count in A")
            process_a.terminate()
            process_a.wait(timeout=15)
        last_in_a = bot_numbers(log_a, bot)[-1]
        log_b = serve_log(db, url_b)

        async def taken_over() -> bool:
            return len(bot_numbers(log_b, bot)) >= 2

        await wait_for(taken_over, what="process B to take the bot over")
    in_b = bot_numbers(log_b, bot)
    assert in_b[0] in (last_in_a, last_in_a + 1)
    assert in_b == list(range(in_b[0], in_b[0] + len(in_b)))


async def test_an_unreachable_redis_fails_at_start_up() -> None:
    with pytest.raises(redis.ConnectionError, match=re.escape("127.0.0.1:6")):
        await open_coordinator("redis://127.0.0.1:6/0", "latlab-test")


async def test_taking_over_leaves_the_takers_own_bots_ticking_once(
    tmp_path: Path, env: dict[str, str]
) -> None:
    db = tmp_path / "latlab.db"
    with latlab_serve(db, "--no-targets", env=env) as (_, url_b):
        async with httpx.AsyncClient(base_url=url_b) as b:
            own = (await b.post("/start", json={"start_number": 0})).json()["bot_id"]
        with latlab_serve(db, "--no-targets", env=env) as (process_a, url_a):
            async with httpx.AsyncClient(base_url=url_a) as a:
                orphan = (await a.post("/start", json={"start_number": 500})).json()["bot_id"]
            process_a.terminate()
            process_a.wait(timeout=15)
        log_b = serve_log(db, url_b)

        async def taken_over_and_ticked() -> bool:
            return len(bot_numbers(log_b, orphan)) >= 4

        await wait_for(taken_over_and_ticked, what="process B to take the bot over")
    own_numbers = bot_numbers(log_b, own)
    assert own_numbers == list(range(len(own_numbers)))  # never re-added, never twice a tick
