"""Real servers for tests: the control API under uvicorn, and small HTTP targets."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from latlab.app import create_app
from latlab.coordination import Coordinator, LocalCoordinator
from latlab.jobs.clock import SystemClock
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.manager import JobManager
from latlab.jobs.runner import JobRunner, RunContext
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store
from latlab.storage.writer import BatchWriter
from latlab.targets.counters import CountsTable
from latlab.targets.server import TargetsServer
from latlab.targets.tickets import MemoryTickets
from services import free_port, wait_for_port

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n"
BODY = b'{"message":"pong"}'


def bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def start_targets(host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """LatLab's targets with defaults (3 s /test, no export) as a bare ``asyncio.Server``,
    for tests that only need something to measure; closing the server ends them."""
    server = TargetsServer(work_s=3.0, tickets=MemoryTickets(), counts=CountsTable.in_memory(1))
    return await server.listen(host, port)


@asynccontextmanager
async def running_engine(
    store: Store,
    runners: list[JobRunner],
    coordinator: Coordinator | None = None,
    events: Events | None = None,
) -> AsyncIterator[JobManager]:
    """A started :class:`JobManager` with ``runners`` on ``store``, shut down afterwards."""
    events = events or Events()
    async with BatchWriter(store, delay_s=0, committed=events.committed) as writer:
        coordinator = coordinator or LocalCoordinator()
        ctx = RunContext(store, writer, SystemClock(), ProbeClient(), coordinator, events)
        manager = JobManager(ctx, InProcessExecutor(), runners)
        try:
            await manager.start()
            await manager.adopted()
            yield manager
        finally:
            await manager.shutdown()
            await ctx.coordinator.close()


async def run_experiment_to_end(store: Store, runner: JobRunner, spec: dict[str, Any]) -> int:
    """Create and start one experiment on a fresh engine; its id once it has completed."""
    from latlab.storage import JobState

    async with running_engine(store, [runner]) as jobs:
        job = await jobs.create(runner.kind, spec, start=True)

        async def ended() -> bool:
            return (await store.get_job(runner.kind, job.id)).state is JobState.COMPLETED

        await wait_for(ended, what=f"{runner.kind} job {job.id} to complete")
    return job.id


class QuickServer(uvicorn.Server):
    """uvicorn's server without its fixed pauses: 0.1 s ticks to notice the exit and 0.1 s
    before the connections are closed, on each of the hundreds of servers the suite starts
    and stops (a minute in all). The same steps otherwise: stop listening, close the
    connections once their responses end, then the lifespan's shutdown. A client still
    connected (a browser's page) is first let finish what it loads: until no request came
    for ``QUIET_S``."""

    QUIET_S = 0.05

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exiting = asyncio.Event()

    async def main_loop(self) -> None:
        await self.exiting.wait()

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        await asyncio.sleep(0.002)  # the test's client has just closed its connections
        seen = -1
        while self.server_state.connections and seen != self.server_state.total_requests:
            seen = self.server_state.total_requests
            await asyncio.sleep(self.QUIET_S)
        for listening in self.servers:
            listening.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        # uvicorn's state has no event to wait on: it is looked at, as uvicorn does itself.
        while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        await self.lifespan.shutdown()


@asynccontextmanager
async def run_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """``create_app(settings)`` under uvicorn on a free loopback port; a client for it."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, lifespan="on", log_level="warning"
    )
    server = QuickServer(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.002)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        server.exiting.set()
        await task


@contextmanager
def latlab_serve(
    db: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python -m latlab serve`` on a free port with SQLite ``db``; output to serve-PORT.log."""
    with spawned_serve(db, *args, env=env) as (process, url):
        wait_until_serving(process, url)
        yield process, url


def wait_until_serving(process: subprocess.Popen[bytes], url: str) -> None:
    """Until the ``latlab serve`` at ``url`` listens (an error if it exits first)."""
    wait_for_port("127.0.0.1", int(url.rsplit(":", 1)[1]), 30, process)


@contextmanager
def spawned_serve(
    db: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``latlab_serve`` without the wait for its port: other processes start meanwhile."""
    port = free_port()
    environment = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{db}", **(env or {})}
    command = [sys.executable, "-m", "latlab", "serve", "--port", str(port), *args]
    log = (db.parent / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()  # never left behind to load the machine for the next tests
                process.wait()
                raise
        log.close()


def serve_log(db: Path, url: str) -> Path:
    """Where ``latlab_serve`` writes the output of the server at ``url``."""
    return db.parent / f"serve-{url.rsplit(':', 1)[1]}.log"


def bot_numbers(log: Path, bot_id: int) -> list[int]:
    """The numbers a bot printed, in order, from a server's log."""
    return [int(n) for n in re.findall(rf"bot {bot_id}: (-?\d+)", log.read_text())]


@dataclass
class CountingTarget:
    """An HTTP target that counts requests and can answer late (``delay_s``)."""

    delay_s: float = 0.0
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(RESPONSE + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> CountingTarget:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = bound_port(self._server)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``check`` until true; a deadline only guards against hanging, it asserts nothing."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def experiment(client: httpx.AsyncClient, experiment_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/v1/experiments/{experiment_id}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def wait_state(
    client: httpx.AsyncClient, experiment_id: int, state: str, timeout_s: float = 20.0
) -> dict[str, Any]:
    async def reached() -> bool:
        return bool((await experiment(client, experiment_id))["state"] == state)

    await wait_for(reached, timeout_s, f"experiment {experiment_id} to be {state}")
    return await experiment(client, experiment_id)


async def wait_done(client: httpx.AsyncClient, experiment_id: int, at_least: int) -> None:
    async def enough() -> bool:
        return int((await experiment(client, experiment_id))["done"]) >= at_least

    await wait_for(enough, what=f"{at_least} results of experiment {experiment_id}")


async def hold_connections(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` connections to ``port`` that send nothing, opened 100 at a time."""
    writers = []
    for _ in range(0, count, 100):
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(100))
        )
        writers += [writer for _, writer in opened]
    return writers
