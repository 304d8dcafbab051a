"""``latlab worker``: run the jobs the control plane dispatches, on this machine.

A worker opens what the API opens for its jobs (store, writer, Redis coordination, probes,
exporters) but no HTTP server. It renews its lease and its fleet entry, reads two lanes of
dispatch (heavy: experiments and load runs, ``capacity`` at a time; light: bots), claims each
job in the store and runs it with the same code as the API process would.

SIGTERM or SIGINT hands its jobs off: reading stops, each job is halted with its last
checkpoint written, and the lease is released, so the control plane re-dispatches them at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from latlab.cli.logs import StartupLog
from latlab.cli.shutdown import ShutdownDeadline
from latlab.cli.startup import StartupError
from latlab.jobs.kinds.spec_checks import LOCATION_MAX, LOCATION_PATTERN
from latlab.serving.runner import run
from latlab.serving.signals import stop_on_signals
from latlab.settings import Settings
from latlab.storage.registry import check_url

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from latlab.coordination.fleet import Fleet
    from latlab.jobs.worker import Worker

logger = logging.getLogger("latlab.worker")
LIGHT_SLOTS = 100_000  # bots: bounded by the store's quota, not by the worker
HANDOFF_DEADLINE_S = 10.0  # a load shard drains (its answers in flight, up to 2 s), then writes


def run_worker(settings: Settings, *, location: str, capacity: int, log: StartupLog) -> None:
    check_url(settings.storage_url)
    if settings.redis_url is None:
        raise StartupError("a worker needs Redis: set LATLAB_REDIS_URL (the API's too)")
    if re.fullmatch(LOCATION_PATTERN, location) is None or len(location) > LOCATION_MAX:
        message = f"--location {location!r}: use letters, digits, '.', '_' or '-' (up to 64)"
        raise StartupError(message)
    run(_work(settings, location, capacity, log))


async def _work(settings: Settings, location: str, capacity: int, log: StartupLog) -> None:
    stop = asyncio.Event()
    deadline = ShutdownDeadline(HANDOFF_DEADLINE_S)
    with stop_on_signals(stop):
        try:
            async with open_worker(settings, location=location, capacity=capacity) as worker_id:
                log.started()
                logger.info("worker %s up: location %s, capacity %d", worker_id, location, capacity)
                await stop.wait()
                logger.info("worker %s stopping: handing its jobs off", worker_id)
                deadline.start()
        finally:
            deadline.cancel()


@asynccontextmanager
async def open_worker(settings: Settings, *, location: str, capacity: int) -> AsyncIterator[str]:
    """A running worker until the block ends; yields its id."""
    from latlab.coordination.dispatch import Handling, receive
    from latlab.coordination.fleet import Fleet
    from latlab.coordination.redis import open_client
    from latlab.coordination.requests import OwnerRequests
    from latlab.coordination.streams import Lane
    from latlab.jobs.executor import InProcessExecutor
    from latlab.jobs.manager import JobManager
    from latlab.jobs.relay import RelaySink
    from latlab.jobs.supervise import supervise
    from latlab.jobs.worker import Worker
    from latlab.runtime import job_runners, open_run_context
    from latlab.shared import serve_load_questions, spawn

    assert settings.redis_url is not None
    redis_url = settings.redis_url
    async with AsyncExitStack() as stack:
        ctx, _sinks = await open_run_context(settings, stack)
        client = open_client(redis_url, ctx.coordinator.lease_s / 3)
        stack.push_async_callback(client.aclose)
        relay = RelaySink(f"{settings.redis_prefix}:events")  # to the API processes' sinks
        ctx.events.subscribe(relay)
        # Opened before the jobs, so closed after them: their last checkpoints are relayed.
        spawn(stack, "relay out", functools.partial(relay.publish, client))
        spawn(stack, "relay listeners", functools.partial(relay.watch_listeners, client))
        stack.push_async_callback(relay.drain, client)
        executor = InProcessExecutor()
        jobs = JobManager(ctx, executor, job_runners(settings), adopts=False)
        stack.push_async_callback(jobs.shutdown)
        await jobs.start()
        worker = Worker(ctx, jobs, executor, location=location, capacity=capacity)
        fleet = Fleet(client, settings.redis_prefix, ctx.coordinator.lease_s)
        await fleet.heartbeat(worker.info())
        stack.push_async_callback(_leave, fleet, worker, client, settings.redis_prefix)

        handlings: dict[Lane, Handling] = {
            "heavy": Handling(capacity),
            "light": Handling(LIGHT_SLOTS),
        }

        def lane(name: Lane) -> Callable[[], Awaitable[None]]:
            return lambda: receive(
                redis_url,
                settings.redis_prefix,
                lane=name,
                location=location,
                consumer=ctx.coordinator.owner_id,
                handling=handlings[name],
                run=worker.run_job,
            )

        loops = {
            "fleet heartbeat": lambda: worker.heartbeat(fleet),
            "dispatch (heavy)": lane("heavy"),
            "dispatch (light)": lane("light"),
        }
        tasks = [asyncio.create_task(supervise(name, loop)) for name, loop in loops.items()]
        serve_load_questions(OwnerRequests(client, settings.redis_prefix), jobs, ctx.store, stack)
        try:
            yield ctx.coordinator.owner_id
        finally:
            # Reading stops first, so nothing is claimed while the jobs are handed off.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for handling in handlings.values():
                await handling.close()


async def _leave(fleet: Fleet, worker: Worker, client: Redis, prefix: str) -> None:
    from latlab.coordination.streams import worker_streams

    worker_id = worker.info().id
    try:
        await fleet.leave(worker_id)
        # Jobs sent back to it after this go to any worker once it does not take them.
        await client.delete(*worker_streams(prefix, worker_id))
    except Exception as exc:  # its entry expires with the lease, its streams with the entry
        logger.warning("could not leave the fleet at shutdown: %s", exc)
