"""One contract for every ticket queue behind /test: memory, file and Redis (real ones)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from clients import wait_metric
from running import forget, new_prefix, serving, settings_for

from harness import wait_for
from latlab.targets.counters import CELLS, Cell
from latlab.targets.redis_tickets import RedisTickets
from latlab.targets.serial import SerialQueue, TicketsUnavailableError
from latlab.targets.tickets import FileTickets, MemoryTickets, Tickets
from proxy import TcpProxy
from services import require_redis
from serving.http_client import connect, get, read_answer

Opener = Callable[[], Tickets]


@pytest.fixture(params=["memory", "file", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def opener(kind: str, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens queues that share one underlying queue (the memory kind: one instance only)."""
    opened: list[Tickets] = []
    prefix = new_prefix()
    memory = MemoryTickets()

    def open_one() -> Tickets:
        if kind == "memory":
            return memory
        tickets: Tickets = (
            FileTickets(tmp_path / "test.tickets")
            if kind == "file"
            else RedisTickets(require_redis(), prefix)
        )
        opened.append(tickets)
        return tickets

    yield open_one
    for tickets in opened:
        await tickets.close()
    forget(prefix)


async def test_tickets_are_served_lowest_first_and_leave_in_any_order(opener: Opener) -> None:
    tickets = opener()
    first, second, third = [await tickets.take() for _ in range(3)]
    assert first < second < third
    assert await tickets.head() == first
    await tickets.leave(second)  # a waiter leaving does not disturb the head
    assert await tickets.head() == first
    await tickets.leave(first)
    assert await tickets.head() == third
    await tickets.leave(third)
    assert await tickets.head() is None
    await tickets.keep_alive()


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_processes_share_one_queue(opener: Opener) -> None:
    a, b = opener(), opener()
    mine = await a.take()
    theirs = await b.take()
    assert theirs == mine + 1
    assert await b.head() == mine
    await a.leave(mine)
    assert await b.head() == theirs


@pytest.mark.parametrize("kind", ["file", "redis"])
async def test_closing_drops_what_the_process_still_held(opener: Opener) -> None:
    a, b = opener(), opener()
    await a.take()
    theirs = await b.take()
    await a.close()
    assert await b.head() == theirs


async def test_file_tickets_of_a_dead_process_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "test.tickets"
    code = (
        "import asyncio, os, sys; from pathlib import Path;"
        "from latlab.targets.tickets import FileTickets;"
        "t = FileTickets(Path(sys.argv[1])); print(asyncio.run(t.take()), flush=True);"
        "os._exit(0)"  # dies holding its ticket, with no clean-up at all
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(path), stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await child.communicate()
    assert int(stdout) == 1
    tickets = FileTickets(path)
    try:
        mine = await tickets.take()
        assert await tickets.head() == mine == 2
        assert not [
            p for p in os.listdir(tmp_path) if p.endswith(".owner") and tickets.owner not in p
        ]
    finally:
        await tickets.close()


async def test_an_unreadable_ticket_file_starts_a_fresh_queue(tmp_path: Path) -> None:
    path = tmp_path / "test.tickets"
    path.write_bytes(b"\x00garbage{")
    tickets = FileTickets(path)
    try:
        assert await tickets.head() is None
        assert await tickets.take() == 1
    finally:
        await tickets.close()


@pytest.fixture
def prefix() -> Iterator[str]:
    """A Redis key prefix of the test's own, deleted afterwards."""
    name = new_prefix()
    yield name
    forget(name)


async def test_redis_tickets_of_a_process_whose_lease_ended_are_dropped(prefix: str) -> None:
    a, b = RedisTickets(require_redis(), prefix), RedisTickets(require_redis(), prefix)
    client = redis.Redis.from_url(require_redis())
    try:
        await a.take()
        theirs = await b.take()
        await client.delete(f"{prefix}:targets:test:owner:{a.owner}")  # as if it expired
        assert await b.head() == theirs
    finally:
        await client.aclose()
        for tickets in (a, b):
            await tickets.close()


async def test_a_waiter_whose_place_was_dropped_is_told_so(prefix: str) -> None:
    url = require_redis()
    holder, other = RedisTickets(url, prefix), RedisTickets(url, prefix)
    other.renew_s = None  # its lease must stay gone once deleted
    cells = [0] * CELLS
    queue = SerialQueue(other, cells)
    client = redis.Redis.from_url(url)
    try:
        held = await holder.take()

        async def wait_turn() -> None:
            async with queue.turn():
                pass

        async def queued() -> bool:
            return cells[Cell.TEST_QUEUED] == 1

        waiter = asyncio.create_task(wait_turn())
        await wait_for(queued, what="the waiter's ticket")
        await client.delete(f"{prefix}:targets:test:owner:{other.owner}")  # lease gone
        await holder.leave(held)
        with pytest.raises(TicketsUnavailableError, match="lost"):
            await waiter
    finally:
        await client.aclose()
        await holder.close()
        await queue.close()


async def test_a_queue_that_goes_away_answers_its_waiters_503(
    caplog: pytest.LogCaptureFixture, prefix: str
) -> None:
    url = require_redis()
    settings = settings_for(redis_prefix=prefix)
    holder = RedisTickets(url, settings.redis_prefix)
    upstream_port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        await holder.take()  # keeps the server's request waiting
        async with TcpProxy("127.0.0.1", upstream_port) as proxy:
            proxied = f"redis://{proxy.host}:{proxy.port}/0"
            settings = settings.model_copy(update={"redis_url": proxied})
            async with serving(settings) as port, connect(port) as (reader, writer):
                writer.write(get("/test"))
                await wait_metric(port, "latlab_target_test_tickets_total", 1)
                await proxy.cut()
                answer = await read_answer(reader)
        assert answer.status == 503
        assert "could not leave the /test queue" in caplog.text
    finally:
        await holder.close()
