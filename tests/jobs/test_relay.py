"""The event relay over the local Redis: what one process's seam delivers, another's sinks get."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from harness import wait_for
from latlab.coordination.redis import open_client
from latlab.exporters.base import LoadSecond, LoadTags, ProbeTags, SinkBase, StateChange
from latlab.jobs import relay
from latlab.jobs.relay import RelaySink, listen
from latlab.storage.records import JobState, ProbeResult, SiteResult
from services import require_redis

AT = datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC)
TAGS = ProbeTags("127.0.0.1", 8008, "/api/latency")


class Recording(SinkBase):
    def __init__(self) -> None:
        self.got: list[object] = []
        self.count = asyncio.Event()

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        self._got(("probed", experiment_id, tags, list(results)))

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        self._got(("load_second", tags, second))

    def state_changed(self, change: StateChange) -> None:
        self._got(("state_changed", change))

    def deleted(self, kind: str, job_id: int) -> None:
        self._got(("deleted", kind, job_id))

    def _got(self, event: object) -> None:
        self.got.append(event)
        self.count.set()


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    redis = open_client(require_redis(), 1.0)
    yield redis
    await redis.aclose()


async def until_listening(client: aioredis.Redis, channel: str, listeners: int = 1) -> None:
    async def subscribed() -> bool:
        return bool((await client.pubsub_numsub(channel))[0][1] >= listeners)

    await wait_for(subscribed, 5, f"{listeners} listener(s) on {channel}")


async def until_got(sink: Recording, events: int = 1) -> None:
    """Until ``sink`` has heard ``events`` events (each within 5 s)."""
    while len(sink.got) < events:
        sink.count.clear()
        await asyncio.wait_for(sink.count.wait(), 5)


async def stopped(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_every_kind_of_event_reaches_the_other_process_as_it_was(
    client: aioredis.Redis,
) -> None:
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel), Recording()
    listening = asyncio.create_task(listen(client, channel, "another process", [sink]))
    publishing = asyncio.create_task(out.publish(client))
    await until_listening(client, channel)
    await out.count_listeners(client)
    result = ProbeResult(7, 0, 200, 1.25, AT, AT, connect_ms=0.5, error=None)
    located = SiteResult(7, 0, 200, 2.5, AT, AT, location="eu-1")
    eu = ProbeTags(TAGS.host, TAGS.port, TAGS.path, "eu-1")
    second = LoadSecond(3, 0, AT, 100, 1, 99.5, 1.0, 2.0, 3.0, None)
    change = StateChange("probe", 7, JobState.COMPLETED, None, AT)
    out.probed(7, TAGS, [result])
    out.probed(7, eu, [located])
    out.load_second(LoadTags("h", 1, "/", "POST"), second)
    out.state_changed(change)
    out.deleted("probe", 7)
    await until_got(sink, 5)
    await stopped(listening, publishing)
    assert sink.got == [
        ("probed", 7, TAGS, [result]),
        ("probed", 7, eu, [located]),  # a series' result: still one of its location
        ("load_second", LoadTags("h", 1, "/", "POST"), second),
        ("state_changed", change),
        ("deleted", "probe", 7),
    ]


async def test_a_process_does_not_hear_its_own_events(client: aioredis.Redis) -> None:
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, own, other = RelaySink(channel), Recording(), Recording()
    tasks = [
        asyncio.create_task(listen(client, channel, out.origin, [own])),
        asyncio.create_task(listen(client, channel, "another process", [other])),
        asyncio.create_task(out.publish(client)),
    ]
    await until_listening(client, channel, 2)
    await out.count_listeners(client)
    out.deleted("bot", 1)
    await until_got(other)
    await stopped(*tasks)
    assert own.got == []
    assert other.got == [("deleted", "bot", 1)]


async def test_nothing_is_relayed_while_no_other_process_listens(
    client: aioredis.Redis,
) -> None:
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel, listening_here=True), Recording()
    mine = asyncio.create_task(listen(client, channel, out.origin, []))
    publishing = asyncio.create_task(out.publish(client))
    await until_listening(client, channel)
    await out.count_listeners(client)
    alone = out.active
    out.deleted("bot", 1)  # nobody else to tell: held, not encoded
    await out.count_listeners(client)  # still nobody: let go
    other = asyncio.create_task(listen(client, channel, "another process", [sink]))
    await until_listening(client, channel, 2)
    await out.count_listeners(client)
    out.deleted("bot", 2)
    await until_got(sink)
    await stopped(mine, publishing, other)
    assert alone is False
    assert sink.got == [("deleted", "bot", 2)]


async def test_a_process_that_listens_before_the_next_count_hears_what_came_since(
    client: aioredis.Redis,
) -> None:
    """Found by starting an API process and a worker together: the worker counted nobody,
    the API subscribed, and the experiment the worker ran within the next second reached
    neither the API's feed nor its /metrics."""
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel), Recording()
    publishing = asyncio.create_task(out.publish(client))
    await out.count_listeners(client)
    alone = out.active
    other = asyncio.create_task(listen(client, channel, "an API started now", [sink]))
    await until_listening(client, channel)
    out.deleted("probe", 1)  # made after the API listened, before the worker counted again
    await out.count_listeners(client)
    await until_got(sink)
    await stopped(publishing, other)
    assert alone is False
    assert sink.got == [("deleted", "probe", 1)]


def test_past_the_bound_events_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay, "MAX_PENDING", 3)
    out = RelaySink("nowhere")
    out.active = True  # as if another process listened
    for job_id in range(5):
        out.deleted("bot", job_id)
    assert out.dropped == 2


async def test_held_past_the_bound_the_oldest_go_and_the_newest_are_heard(
    client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: full while nobody listened, the sink kept the oldest events and let
    the newest go, the very ones a process that subscribed meanwhile should hear."""
    monkeypatch.setattr(relay, "MAX_PENDING", 3)
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel), Recording()
    publishing = asyncio.create_task(out.publish(client))
    await out.count_listeners(client)
    other = asyncio.create_task(listen(client, channel, "an API started now", [sink]))
    await until_listening(client, channel)
    for job_id in range(5):
        out.deleted("probe", job_id)
    await out.count_listeners(client)
    await until_got(sink, 3)
    await stopped(publishing, other)
    assert sink.got == [("deleted", "probe", n) for n in (2, 3, 4)]
    assert out.dropped == 0  # nobody had been counted as listening: nothing was missed


async def test_drain_counts_the_listeners_before_it_lets_anything_go(
    client: aioredis.Redis,
) -> None:
    """Found in review: a worker stopping within a second of an API's subscription let go
    what it held, having counted nobody at its last count."""
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel), Recording()
    await out.count_listeners(client)
    listening = asyncio.create_task(listen(client, channel, "an API started now", [sink]))
    await until_listening(client, channel)
    out.deleted("probe", 4)
    await out.drain(client)
    await until_got(sink)
    await stopped(listening)
    assert sink.got == [("deleted", "probe", 4)]


def test_a_sink_that_fails_does_not_keep_the_others_from_the_event() -> None:
    class Failing(SinkBase):
        def deleted(self, kind: str, job_id: int) -> None:
            raise RuntimeError("broken sink")

    sink = Recording()
    relay.deliver({"deleted": ["probe", 2]}, [Failing(), sink])
    assert sink.got == [("deleted", "probe", 2)]


async def test_drain_publishes_what_is_pending_at_shutdown(client: aioredis.Redis) -> None:
    """A worker drains its relay after its jobs' last checkpoints (it used to cancel the relay
    before them, and the API's /metrics missed that last batch of a handed-off job)."""
    channel = f"relay-{secrets.token_hex(4)}:events"
    out, sink = RelaySink(channel), Recording()
    listening = asyncio.create_task(listen(client, channel, "another process", [sink]))
    await until_listening(client, channel)
    await out.count_listeners(client)
    out.deleted("probe", 3)  # stored last, after the publishing loop was stopped
    await out.drain(client)
    await until_got(sink)
    await stopped(listening)
    assert sink.got == [("deleted", "probe", 3)]
