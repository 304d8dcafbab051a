"""Blips under two API processes: Redis away for a moment, one process cut off, one frozen.

Real servers only: a private redis-server (and PostgreSQL) per test, the API processes as
subprocesses, and the test's own event loop serving the TCP proxy and the probe target (so
the API processes are started and stopped off that loop).
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from harness import CountingTarget, bot_numbers, latlab_serve, serve_log, wait_for
from latlab.storage import JobState, Store, open_store
from outages import OwnPostgres, OwnRedis
from proxy import TcpProxy

TICK_S = 0.05
LEASE_S = 3.0  # RedisCoordinator.lease_s
EXPERIMENTS, PROBES, INTERVAL_S = 20, 60, 0.05


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    client: httpx.AsyncClient
    log: Path


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    with OwnRedis() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"latlab-blip-{secrets.token_hex(4)}"


def coordinated(redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "LATLAB_REDIS_URL": redis_url,
        "LATLAB_REDIS_PREFIX": prefix,
        "LATLAB_BOTS_TICK_S": str(TICK_S),
    }


@asynccontextmanager
async def serving(db: Path, env: dict[str, str]) -> AsyncIterator[Api]:
    """``latlab_serve`` entered and left in a thread: the loop serves proxy and target meanwhile."""
    with ExitStack() as stack:
        serve = latlab_serve(db, "--no-targets", env=env)
        process, url = await asyncio.to_thread(stack.enter_context, serve)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                yield Api(process, client, serve_log(db, url))
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a test that failed while it was frozen
            try:
                await asyncio.to_thread(stack.close)
            except subprocess.TimeoutExpired:  # hung at shutdown: fail, but leave nothing behind
                process.kill()
                await asyncio.to_thread(process.wait)
                raise


async def leave(api: Api) -> None:
    """A graceful exit (SIGTERM), as a deployment would do it."""
    api.process.terminate()
    await asyncio.to_thread(api.process.wait, 15)


# --- bots -----------------------------------------------------------------------------------


async def start_bot(api: Api) -> int:
    response = await api.client.post("/start", json={"start_number": 0})
    response.raise_for_status()
    return int(response.json()["bot_id"])


def numbers(apis: Sequence[Api], bot: int) -> list[int]:
    return sorted(n for api in apis for n in bot_numbers(api.log, bot))


def highest(apis: Sequence[Api], bot: int) -> int:
    return max(numbers(apis, bot), default=-1)


def printer(apis: Sequence[Api], bot: int) -> Api:
    """The process that printed the bot's highest number: its owner as far as the logs tell."""
    return max(apis, key=lambda api: max(bot_numbers(api.log, bot), default=-1))


async def ticked_on(apis: Sequence[Api], bots: Sequence[int], ticks: int, what: str) -> None:
    goal = {bot: highest(apis, bot) + ticks for bot in bots}

    async def reached() -> bool:
        return all(highest(apis, bot) >= goal[bot] for bot in bots)

    await wait_for(reached, 10, what)


async def taken_over(survivor: Api, gone: Api, bots: Sequence[int]) -> None:
    """The survivor prints each bot on, 3 numbers past the last one the other printed."""

    async def printed_on() -> bool:
        return all(highest([survivor], bot) >= highest([gone], bot) + 3 for bot in bots)

    await wait_for(printed_on, 10, f"{survivor.log.name} to take bots {list(bots)} over")


async def stop_through_other(apis: Sequence[Api], bot: int, ticking: Sequence[int]) -> int:
    """Stop ``bot`` through the process that does not print it; numbers printed afterwards."""
    other = next(api for api in apis if api is not printer(apis, bot))
    assert (await other.client.get(f"/stop/{bot}")).status_code == 204
    at_stop = highest(apis, bot)
    await ticked_on(apis, ticking, 5, f"other bots to tick on after stopping {bot}")
    return highest(apis, bot) - at_stop


def runs(values: Sequence[int]) -> str:
    """``0 1 2 2 3 7`` as ``0-2, 2-3, 7``: how a log's numbers continue or jump."""
    spans: list[list[int]] = []
    for n in values:
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)


def assert_once_per_tick(apis: Sequence[Api], bot: int, handovers: int) -> None:
    """No gap, and no number printed twice but one at each hand-over."""
    counts = Counter(numbers(apis, bot))
    detail = "; ".join(f"{api.log.name}: {runs(bot_numbers(api.log, bot))}" for api in apis)
    assert sorted(counts) == list(range(min(counts), max(counts) + 1)), f"gap: {detail}"
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert max(counts.values()) <= 2, f"bot {bot} printed 3 times: {detail}"
    assert len(twice) <= handovers, f"bot {bot} printed {twice} twice: {detail}"


async def wait_listening(redis_url: str, prefix: str, processes: int = 2) -> None:
    """Both processes subscribed to halts again (after an outage their listeners reconnect)."""
    client = aioredis.Redis.from_url(redis_url)
    try:

        async def subscribed() -> bool:
            [(_, count)] = await client.pubsub_numsub(f"{prefix}:jobs:halted")
            return int(count) >= processes

        await wait_for(subscribed, 15, "every process to listen for halts again")
    finally:
        await client.aclose()


# --- experiments ----------------------------------------------------------------------------


async def create(api: Api, port: int) -> list[int]:
    spec = {"host": "127.0.0.1", "port": port, "interval_s": INTERVAL_S, "count": PROBES}
    response = await api.client.post("/api/v1/experiments?start=true", json=[spec] * EXPERIMENTS)
    response.raise_for_status()
    return [int(item["id"]) for item in response.json()["data"]]


async def done_by_id(store: Store, ids: Sequence[int]) -> dict[int, tuple[JobState, int]]:
    page = await store.list_jobs("probe")
    wanted = set(ids)
    return {
        job.id: (job.state, int(job.progress.get("done", 0)))
        for job in page.items
        if job.id in wanted
    }


async def wait_done(store: Store, ids: Sequence[int], at_least: int) -> None:
    async def enough() -> bool:
        return all(done >= at_least for _, done in (await done_by_id(store, ids)).values())

    await wait_for(enough, 15, f"{at_least} probes of every experiment")


async def wait_completed(store: Store, ids: Sequence[int]) -> list[str]:
    """Wait until all completed; meanwhile note every ``done`` that went backwards."""
    seen: dict[int, int] = {}
    backwards: list[str] = []

    async def completed() -> bool:
        jobs = await done_by_id(store, ids)
        for job_id, (_, done) in jobs.items():
            if done < seen.get(job_id, 0):
                backwards.append(f"experiment {job_id}: done {seen[job_id]} -> {done}")
            seen[job_id] = max(done, seen.get(job_id, 0))
        return all(state is JobState.COMPLETED for state, _ in jobs.values())

    await wait_for(completed, 30, "every experiment to complete")
    return backwards


async def assert_probed_once(store: Store, ids: Sequence[int]) -> None:
    for job_id, (state, done) in (await done_by_id(store, ids)).items():
        seqs = [result.seq for result in await store.probe_results.list(job_id)]
        assert (state, done, seqs) == (JobState.COMPLETED, PROBES, list(range(PROBES))), job_id


async def written_after_waking(
    store: Store, ids: Sequence[int], frozen_owners: set[str], frozen: datetime, woke: datetime
) -> list[str]:
    """What the frozen process wrote after it woke, as far as the store shows it: results probed
    after waking on a slot scheduled before the freeze, and checkpoints that name it again."""
    page = await store.list_jobs("probe")
    owners = {job.id: str(job.progress.get("fleet")) for job in page.items if job.id in ids}
    found = [
        f"experiment {i} names the frozen owner" for i, o in owners.items() if o in frozen_owners
    ]
    for job_id in ids:
        for r in await store.probe_results.list(job_id):
            if r.timestamp >= woke and r.scheduled_at <= frozen:
                found.append(f"experiment {job_id}: seq {r.seq} probed after waking")
    return found


async def owners(store: Store, ids: Sequence[int]) -> set[str]:
    page = await store.list_jobs("probe")
    return {str(job.progress.get("fleet")) for job in page.items if job.id in ids}


@asynccontextmanager
async def postgres_store() -> AsyncIterator[tuple[str, Store]]:
    with OwnPostgres() as pg:
        url = await asyncio.to_thread(pg.create_database, "latlab")
        store = await open_store(url)
        try:
            yield url, store
        finally:
            await store.close()


async def frozen_for(api: Api, seconds: float) -> tuple[datetime, datetime]:
    """SIGSTOP the process for ``seconds``, then SIGCONT; when it froze and when it woke."""
    api.process.send_signal(signal.SIGSTOP)
    frozen = datetime.now(UTC)
    try:
        await asyncio.sleep(seconds)  # the freeze itself, longer than the lease
    finally:
        api.process.send_signal(signal.SIGCONT)
    return frozen, datetime.now(UTC)


# --- tests ----------------------------------------------------------------------------------


async def test_redis_away_for_two_seconds_keeps_stops_failover_and_single_ticks(
    tmp_path: Path, own_redis: OwnRedis, prefix: str
) -> None:
    env, db = coordinated(own_redis.url, prefix), tmp_path / "latlab.db"
    async with serving(db, env) as a, serving(db, env) as b:
        apis = (a, b)
        bots = [await start_bot(api) for api in (a, a, a, b, b, b)]
        await ticked_on(apis, bots, 3, "every bot to count")
        async with own_redis.outage():
            await asyncio.sleep(2.0)  # the blip itself
        await ticked_on(apis, bots, 10, "every bot to count on after Redis came back")
        await wait_listening(own_redis.url, prefix)
        live = [bots[1], bots[2], bots[4], bots[5]]
        for bot in (bots[0], bots[3]):
            assert await stop_through_other(apis, bot, live) <= 1  # at most the tick in flight
        await leave(a)
        await taken_over(b, a, live)
    for bot in bots:
        assert_once_per_tick(apis, bot, handovers=2)  # the outage's halt, then the failover


async def test_a_process_cut_off_from_redis_halts_before_its_bots_are_adopted(
    tmp_path: Path, own_redis: OwnRedis, prefix: str
) -> None:
    db = tmp_path / "latlab.db"
    async with TcpProxy("127.0.0.1", own_redis.port) as proxy:
        env_a = coordinated(f"redis://127.0.0.1:{proxy.port}/0", prefix)
        async with serving(db, env_a) as a, serving(db, coordinated(own_redis.url, prefix)) as b:
            apis = (a, b)
            bots = [await start_bot(a) for _ in range(3)]
            await ticked_on(apis, bots, 3, "A's bots to count")
            await proxy.cut()
            await taken_over(b, a, bots)
            await proxy.restore()
            new = await start_bot(a)  # at once, as a client would
            await wait_listening(own_redis.url, prefix)
            assert await stop_through_other(apis, bots[0], bots[1:]) <= 1  # through A
            await ticked_on(apis, [new], 3, "the bot started in A after the proxy came back")
            assert await stop_through_other(apis, new, [bots[1]]) <= 1
    for bot in bots:
        assert_once_per_tick(apis, bot, handovers=1)


async def test_twenty_experiments_on_postgres_run_once_even_across_a_frozen_process(
    tmp_path: Path, own_redis: OwnRedis, prefix: str
) -> None:
    async with postgres_store() as (url, store), CountingTarget() as target:
        env = {**coordinated(own_redis.url, prefix), "LATLAB_STORAGE_URL": url}
        async with serving(tmp_path / "a.db", env) as a, serving(tmp_path / "b.db", env) as b:
            first = await create(b, target.port)
            assert await wait_completed(store, first) == []
            await assert_probed_once(store, first)
            assert target.requests == EXPERIMENTS * PROBES  # no probe ran in two processes
            second = await create(a, target.port)
            await wait_done(store, second, 5)
            owner_a = await owners(store, second)
            frozen, woke = await frozen_for(a, LEASE_S + 2)
            backwards = await wait_completed(store, second)
            await assert_probed_once(store, second)
            landed = await written_after_waking(store, second, owner_a, frozen, woke) + backwards
            extra = target.requests - 2 * EXPERIMENTS * PROBES  # in flight at the freeze, redone
            assert landed == [], f"the woken process's writes landed ({extra} extra probes)"
