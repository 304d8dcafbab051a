"""Every process's measurements and state changes, to every API process, over Redis pub/sub.

With workers, a job's results are stored by the process that runs it; the API processes'
live feed and ``/metrics`` hear of them through this relay. Each process publishes what its
own event seam delivers (after the store committed it) on one channel, tagged with where it
came from, and every API process feeds what the others published to its local sinks (not to
InfluxDB: the process that ran the job writes it there). Fire and forget, like the seam's
other sinks: if Redis is away a batch is dropped and counted; the store has every result,
and a live client replays from it when it reconnects. Nothing is encoded while no other
process listens (one API process with Redis for its bots pays nothing): the sink counts the
channel's listeners every second, and holds what came since the last count, unencoded, until
the next one says whether anybody listens. A process that subscribed in between (an API
started beside running workers) would otherwise miss up to a second of events made after it
listened: its ``/metrics`` missed a worker's whole 20-probe experiment so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from latlab.cancellation import deliver_lost_cancel
from latlab.exporters.base import LoadSecond, LoadTags, ProbeTags, Sink, SinkBase, StateChange
from latlab.storage.records import JobState, ProbeResult, SiteResult

if TYPE_CHECKING:
    import redis.asyncio as redis

log = logging.getLogger("latlab.relay")
MAX_PENDING = 10_000  # events waiting to be published; past it they are dropped
LISTENERS_EVERY_S = 1.0
Event = dict[str, Any]
# A result as a row, not a dict: asdict() took 21 µs a result, this about a quarter.
RESULT_FIELDS = [field.name for field in dataclasses.fields(ProbeResult)]
RESULT_MOMENTS = ("timestamp", "scheduled_at")


def _plain(value: object) -> dict[str, Any]:
    fields = dataclasses.asdict(value)  # type: ignore[call-overload]
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


def _result_row(result: ProbeResult) -> list[Any]:
    """The result's fields in ``RESULT_FIELDS`` order, then a series' location."""
    row: list[Any] = []
    for name in RESULT_FIELDS:
        value = getattr(result, name)
        row.append(value.isoformat() if name in RESULT_MOMENTS else value)
    if isinstance(result, SiteResult):
        row.append(result.location)
    return row


def _result_of(row: list[Any]) -> ProbeResult:
    fields = _dated(dict(zip(RESULT_FIELDS, row, strict=False)), *RESULT_MOMENTS)
    if len(row) > len(RESULT_FIELDS):
        return SiteResult(**fields, location=str(row[len(RESULT_FIELDS)]))
    return ProbeResult(**fields)


def _dated(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    return {**fields, **{name: datetime.fromisoformat(fields[name]) for name in names}}


class RelaySink(SinkBase):
    """The publishing side: a sink of this process's seam, and loops that publish.

    ``listening_here``: this process listens on the channel too (an API process), so only a
    second listener makes publishing worth it.
    """

    def __init__(self, channel: str, *, listening_here: bool = False) -> None:
        self.origin = uuid.uuid4().hex
        self.dropped = 0
        self.active = False  # another process listens
        self._own_listeners = int(listening_here)
        self._channel = channel
        self._pending: deque[Callable[[], Event]] = deque()  # encoded only when published
        self._held = 0  # events held so far: a count knows what came while it ran
        self._wakeup = asyncio.Event()

    async def count_listeners(self, client: redis.Redis) -> None:
        """Whether another process listens now. If so, what was held since the last count
        goes out (a process that subscribed meanwhile hears all that came after it did); if
        not, it is let go."""
        held_before = self._held
        [(_, listeners)] = await client.pubsub_numsub(self._channel)
        self.active = int(listeners) > self._own_listeners
        if self.active:
            self._wakeup.set()
            return
        came_during = self._held - held_before  # they wait for the next count
        while len(self._pending) > came_during:
            self._pending.popleft()

    async def watch_listeners(self, client: redis.Redis) -> None:
        """Count the channel's listeners every second until cancelled (supervised)."""
        while True:
            deliver_lost_cancel()  # a count's Redis call may have swallowed a stop (gh-86296)
            await self.count_listeners(client)
            await asyncio.sleep(LISTENERS_EVERY_S)

    def _add(self, event: Callable[[], Event]) -> None:
        if len(self._pending) >= MAX_PENDING:
            if self.active:  # nobody will hear it
                self.dropped += 1
                return
            self._pending.popleft()  # held for whoever may listen: the newest are kept
        self._pending.append(event)
        self._held += 1
        if self.active:
            self._wakeup.set()

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        self._add(functools.partial(_probed, experiment_id, tags, tuple(results)))

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        self._add(functools.partial(_load_second, tags, second))

    def state_changed(self, change: StateChange) -> None:
        self._add(functools.partial(_state_changed, change))

    def deleted(self, kind: str, job_id: int) -> None:
        self._add(functools.partial(_deleted, kind, job_id))

    async def publish(self, client: redis.Redis) -> None:
        """Publish what the seam delivers until cancelled (supervised)."""
        while True:
            deliver_lost_cancel()  # a publish may have swallowed a stop (gh-86296)
            await self._wakeup.wait()
            self._wakeup.clear()
            await self._publish_pending(client)

    async def drain(self, client: redis.Redis) -> None:
        """Publish what is pending now: at shutdown, once the last checkpoints are stored."""
        try:
            await self.count_listeners(client)  # one may have come since the last count
            await self._publish_pending(client)
        except Exception as exc:  # counted as dropped; the store has them
            log.warning("last relayed events not published: %s", exc)

    async def _publish_pending(self, client: redis.Redis) -> None:
        if not self.active:
            return  # held for the next count of listeners
        batch, self._pending = self._pending, deque()
        if not batch:
            return
        try:
            message = {"origin": self.origin, "events": [event() for event in batch]}
            await client.publish(self._channel, json.dumps(message))
        except Exception:
            self.dropped += len(batch)
            raise


def _probed(experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> Event:
    rows = [_result_row(result) for result in results]
    return {"probed": experiment_id, "tags": _plain(tags), "results": rows}


def _load_second(tags: LoadTags, second: LoadSecond) -> Event:
    return {"load_second": _plain(second), "tags": _plain(tags)}


def _state_changed(change: StateChange) -> Event:
    return {"state_changed": _plain(change)}


def _deleted(kind: str, job_id: int) -> Event:
    return {"deleted": [kind, job_id]}


def deliver(event: Event, sinks: Sequence[Sink]) -> None:
    """One relayed event to ``sinks``, as the seam would have told them."""
    for sink in sinks:
        try:
            _deliver_to(sink, event)
        except Exception:
            log.exception("sink %r failed on a relayed event", sink)


def _deliver_to(sink: Sink, event: Event) -> None:
    if "probed" in event:
        results = [_result_of(row) for row in event["results"]]
        sink.probed(event["probed"], ProbeTags(**event["tags"]), results)
    elif "load_second" in event:
        second = LoadSecond(**_dated(event["load_second"], "at"))
        sink.load_second(LoadTags(**event["tags"]), second)
    elif "state_changed" in event:
        fields = _dated(event["state_changed"], "at")
        sink.state_changed(StateChange(**{**fields, "state": JobState(fields["state"])}))
    elif "deleted" in event:
        sink.deleted(*event["deleted"])


async def listen(client: redis.Redis, channel: str, origin: str, sinks: Sequence[Sink]) -> None:
    """Feed others' events to ``sinks`` until the connection fails (supervised)."""
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        while True:
            deliver_lost_cancel()  # the last read may have swallowed a stop (gh-86296)
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            relayed = json.loads(message["data"])
            if relayed["origin"] != origin:
                for event in relayed["events"]:
                    deliver(event, sinks)
    finally:
        await pubsub.aclose()
