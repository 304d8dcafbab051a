"""A sharded load run's follower: its shards' stored seconds, merged into the run's own.

Second ``n`` of the run is written once every shard still running has stored its second
``n`` (a shard that has completed adds what it has): the shards' histograms of that second
added bucket for bucket, the run's total likewise. The shards count their seconds from
their own starts, which the dispatch puts milliseconds apart.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from latlab.jobs.kinds.children import Children
from latlab.jobs.kinds.load_feed import load_second_from_row, load_tags, seconds_stored
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.kinds.load_stats import (
    PROBE_BUCKET,
    StoredTotals,
    second_payload,
    stored_second,
)
from latlab.jobs.runner import RunContext, fence_owner
from latlab.jobs.supervise import until_stored
from latlab.measure.load.seconds import SecondStats
from latlab.measure.stats import LatencyHistogram
from latlab.storage import HistogramUpdate, JobRecord, JobState
from latlab.storage.records import TOTAL_BUCKET, ProgressUpdate

SHARD_KIND = "load_shard"
SHARDS = Children(SHARD_KIND, key="shards", parent="run", noun="load shard")
# The run's progress keys the follower writes.
FOLLOWED = (
    "seconds",
    "requests",
    "errors",
    "elapsed_s",
    "rate",
    "connections",
    "counting_from",
    "rps",
)


class ShardFailed(Exception):
    """A shard failed or was stopped on its own: its run cannot be whole."""


class ShardFollower:
    """Merges the seconds a run's shards have stored since the last step."""

    def __init__(
        self,
        job: JobRecord,
        spec: LoadRunSpec,
        ctx: RunContext,
        ids: Sequence[int],
        stored: StoredTotals,
    ) -> None:
        self._job_id, self._spec, self._ctx, self._ids = job.id, spec, ctx, list(ids)
        self._stored = stored
        self.next_second = seconds_stored(job)
        # Only the keys it writes: never the owner (``fleet``), which the driver claimed for
        # this process after ``job`` was read.
        kept = {key: job.progress[key] for key in FOLLOWED if key in job.progress}
        self.progress: dict[str, Any] = {**kept, "shards": self._ids}
        self.owner = fence_owner(ctx)
        self._tags = load_tags(spec.target(), spec.method)

    async def step(self, *, final: bool = False) -> bool:
        """Merge what is ready; True once every shard has completed and all is merged.
        ``final``: merge everything stored, whatever the shards' states (a stop)."""
        shards = await self._shards()
        if not final:
            _check(shards)
        ready = [seconds_stored(shard) for shard in shards]
        going = [n for n, shard in zip(ready, shards, strict=True) if not _done(shard, final)]
        through = min(going) if going else max(ready, default=0)
        if through > self.next_second:
            await self._merge(shards, ready, through)
        if not going:
            self._settings(shards)  # all ended: what they all ran at
        return not going

    async def _shards(self) -> list[JobRecord]:
        read = self._ctx.store.get_job
        return [
            await until_stored(f"load shard {i}", functools.partial(read, SHARD_KIND, i))
            for i in self._ids
        ]

    async def _merge(self, shards: list[JobRecord], ready: list[int], through: int) -> None:
        first = self.next_second
        reads = []
        for shard, stored_through in zip(shards, ready, strict=True):
            last = min(through, stored_through) - 1
            payloads = await self._read(shard.id, first, last)
            # A store that writes a checkpoint's progress before its histograms (MongoDB has
            # no transaction) may count a second not there yet: merge up to the first such.
            missing = next((n for n in range(first, last + 1) if n not in payloads), through)
            through = min(through, missing)
            reads.append(payloads)
        if through <= first:
            return
        merged = {n: SecondStats(n, corrected=self._corrected()) for n in range(first, through)}
        began: dict[int, float] = {}
        for payloads in reads:
            for n, payload in payloads.items():
                if n < through:
                    merged[n].merge(SecondStats.from_payload(payload))
                    at = stored_second(payload)[1]
                    if at is not None:
                        began[n] = min(began.get(n, at), at)
        if self._stored.probe is not None:  # the first shard's side probe, whole
            probe = await self._read(shards[0].id, PROBE_BUCKET, PROBE_BUCKET)
            if PROBE_BUCKET in probe:
                self._stored.probe = LatencyHistogram()
                self._stored.probe.add_payload(probe[PROBE_BUCKET])
        for second in merged.values():
            self._stored.total.merge(second)
        self._follow(shards, through, merged)
        await self._write(merged, began)

    async def _read(self, shard_id: int, first: int, last: int) -> dict[int, str]:
        """The shard's buckets ``first..last`` (none if ``last < first``)."""
        if last < first:
            return {}
        histograms = self._ctx.store.histograms
        read = functools.partial(histograms.read, SHARD_KIND, shard_id, first, last)
        return await until_stored(f"load shard {shard_id}", read)

    def _corrected(self) -> LatencyHistogram | None:
        return LatencyHistogram() if self._spec.rate is not None else None

    def _follow(
        self, shards: list[JobRecord], through: int, merged: dict[int, SecondStats]
    ) -> None:
        """The run's progress: its merged seconds and totals, and the shards' settings."""
        progress = [shard.progress for shard in shards]
        starts = [p["counting_from"] for p in progress if p.get("counting_from") is not None]
        self.next_second = through
        self.progress.update(
            seconds=through,
            requests=self._stored.total.requests,
            errors=self._stored.total.errors,
            elapsed_s=max(float(p.get("elapsed_s", 0.0)) for p in progress),
            counting_from=min(starts, default=self.progress.get("counting_from")),
            rps=merged[through - 1].requests,
        )
        self._settings(shards)

    def _settings(self, shards: list[JobRecord]) -> None:
        """Rate and connections: those of the shards sending now (of all, once none is)."""
        sending = [s.progress for s in shards if s.state is JobState.RUNNING]
        self.progress.update(summed_settings(sending or [s.progress for s in shards]))

    async def _write(self, merged: dict[int, SecondStats], began: dict[int, float]) -> None:
        kind, job_id = "load", self._job_id
        histograms = [
            HistogramUpdate(kind, job_id, n, second_payload(second, began.get(n)))
            for n, second in merged.items()
        ]
        histograms.append(
            HistogramUpdate(kind, job_id, TOTAL_BUCKET, self._stored.total.to_payload())
        )
        if self._stored.probe is not None:
            probe = self._stored.probe.to_payload()
            histograms.append(HistogramUpdate(kind, job_id, PROBE_BUCKET, probe))
        update = ProgressUpdate(kind, job_id, dict(self.progress), self.owner)
        write = functools.partial(self._ctx.writer.write, [], [update], histograms)
        await until_stored(f"load run {job_id}", write)
        counting_from = float(self.progress.get("counting_from") or 0.0)
        for n, second in merged.items():
            row = second.row()
            self._ctx.events.load_second(
                self._tags, load_second_from_row(job_id, row, counting_from, began.get(n))
            )

    def summary(self) -> dict[str, Any]:
        return self._stored.summary(self._spec, float(self.progress.get("elapsed_s", 0.0)))


def summed_settings(settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's rate and connections from its shards': summed (no rate if one has none)."""
    rates = [values.get("rate") for values in settings]
    return {
        "rate": None if None in rates else round(sum(float(r) for r in rates if r), 6),
        "connections": sum(int(values.get("connections", 0)) for values in settings),
    }


async def read_shards(ctx: RunContext, ids: Sequence[int]) -> dict[int, JobRecord]:
    """The shards by id, through store outages; one deleted meanwhile is left out."""
    return await SHARDS.read(ctx, ids)


def _done(shard: JobRecord, final: bool) -> bool:
    """Whether a shard will store no more seconds for this step's purpose."""
    return final or shard.state is JobState.COMPLETED


def _check(shards: list[JobRecord]) -> None:
    for index, shard in enumerate(shards):
        if shard.state in (JobState.FAILED, JobState.STOPPED):
            where = shard.spec.get("location")
            at = f" at {where}" if where else ""
            why = shard.error or str(shard.state)
            raise ShardFailed(f"shard {index + 1} of {len(shards)}{at} failed: {why}")
