"""What an API process shares with the others through Redis (with ``LATLAB_REDIS_URL``):
dispatch to the workers and the fleet view, the event relay, and questions to whichever
process runs a job. Opened by ``create_app``'s lifespan; every loop and client is closed by
its stack, loops before the client they use."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

from latlab.coordination.dispatch import Dispatcher
from latlab.coordination.fleet import Fleet
from latlab.coordination.redis import open_client
from latlab.coordination.requests import OwnerRequests
from latlab.exporters.base import Sink
from latlab.jobs.events import Events
from latlab.jobs.executor import InProcessExecutor
from latlab.jobs.fleet import FleetExecutor, FleetWatch, unclaimed_in
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_remote import retune_answerer
from latlab.jobs.kinds.load_sharded import SHARD_KIND
from latlab.jobs.manager import JobManager
from latlab.jobs.relay import RelaySink
from latlab.jobs.relay import listen as listen_relay
from latlab.jobs.supervise import supervise
from latlab.settings import Settings
from latlab.storage import Store


@dataclass(frozen=True, slots=True)
class Shared:
    executor: FleetExecutor
    fleet: FleetWatch
    requests: OwnerRequests


async def open_shared(
    settings: Settings,
    lease_s: float,
    stack: AsyncExitStack,
    events: Events,
    relay_to: Sequence[Sink],
    store: Store,
) -> Shared:
    """Jobs go to workers whenever one is up; the other processes' events reach ``relay_to``
    (this process's live feed and metrics; InfluxDB is written by the process that ran them)."""
    assert settings.redis_url is not None
    prefix = settings.redis_prefix
    client = open_client(settings.redis_url, lease_s / 3)
    stack.push_async_callback(client.aclose)
    relay = RelaySink(f"{prefix}:events", listening_here=True)
    events.subscribe(relay)
    spawn(stack, "relay out", functools.partial(relay.publish, client))
    spawn(stack, "relay listeners", functools.partial(relay.watch_listeners, client))
    relay_in = functools.partial(listen_relay, client, f"{prefix}:events", relay.origin, relay_to)
    spawn(stack, "relay in", relay_in)
    fleet = FleetWatch(Fleet(client, prefix, lease_s), lease_s / 3)
    dispatcher = Dispatcher(settings.redis_url, prefix)
    stack.push_async_callback(dispatcher.close)
    with contextlib.suppress(Exception):  # Redis was reachable a moment ago; else the watch
        await fleet.refresh()
    unclaimed = unclaimed_in(store)
    executor = FleetExecutor(
        InProcessExecutor(),
        dispatcher.dispatch,
        fleet.has_workers_at,
        unclaimed,
        has_room_at=fleet.has_room_at,
        has_room_on=fleet.has_room_on,
    )
    return Shared(executor, fleet, OwnerRequests(client, prefix))


def start_answering(shared: Shared, jobs: JobManager, store: Store, stack: AsyncExitStack) -> None:
    """Once the jobs run: watch the fleet, and answer for the jobs that run here."""
    spawn(stack, "fleet view", shared.fleet.watch)
    spawn(stack, "dispatch claims", shared.executor.watch_claims)
    serve_load_questions(shared.requests, jobs, store, stack)


def serve_load_questions(
    requests: OwnerRequests, jobs: JobManager, store: Store, stack: AsyncExitStack
) -> None:
    """Rate and connection changes of the load runs that run here, asked from anywhere."""
    runners = {kind: jobs.runner(kind) for kind in ("load", SHARD_KIND)}
    load_runners = {kind: r for kind, r in runners.items() if isinstance(r, LoadRunner)}
    answerer = retune_answerer(load_runners, store)
    spawn(stack, "owner questions", functools.partial(requests.serve, answerer))


def spawn(stack: AsyncExitStack, name: str, loop: Callable[[], Awaitable[None]]) -> None:
    """A supervised loop, cancelled when ``stack`` unwinds."""
    task = asyncio.create_task(supervise(name, loop), name=f"latlab-{name}")
    stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
