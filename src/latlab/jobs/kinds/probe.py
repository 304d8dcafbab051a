"""Experiments: a probe job measures ``count`` requests to one URL, ``interval_s`` apart.

What it measures is its spec (``probe_spec``); this module runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any

from latlab.exporters.base import ProbeTags
from latlab.jobs.kinds.children import mark_drained
from latlab.jobs.kinds.probe_spec import ProbeSpec
from latlab.jobs.kinds.probe_stats import FLUSH_RESULTS, StatsKeeper, results_of
from latlab.jobs.runner import KindRunner, RunContext, Started, fence_owner
from latlab.jobs.schedule import SlotSchedule
from latlab.jobs.supervise import until_stored
from latlab.measure.http_probe import Exchange, HttpProber
from latlab.storage import HistogramUpdate, JobRecord, ProbeResult, SiteResult
from latlab.storage.records import ProgressUpdate

KIND = "probe"


@dataclass(frozen=True, slots=True)
class Series:
    """A series of probes a job runs: an experiment's own, or one of an experiment run at
    several locations (a job of kind ``probe_site``), whose results carry its location."""

    kind: str
    spec: ProbeSpec
    experiment_id: int
    location: str | None = None

    def tags(self) -> ProbeTags:
        return ProbeTags(self.spec.host, self.spec.port, self.spec.path, self.location or "")

    def result(
        self, job_id: int, seq: int, exchange: Exchange, ctx: RunContext, times: tuple[float, float]
    ) -> ProbeResult:
        """The result of probe ``seq``, started at ``times[0]`` and due at ``times[1]``."""
        started_at, scheduled_at = (ctx.clock.to_utc(moment) for moment in times)
        fields: dict[str, Any] = {"timestamp": started_at, "scheduled_at": scheduled_at}
        fields |= dataclasses.asdict(exchange)
        if self.location is None:
            return ProbeResult(job_id, seq, **fields)
        return SiteResult(job_id, seq, **fields, location=self.location)


class ProbeRunner(KindRunner):
    """Runs an experiment from its checkpoint: results already stored are never redone."""

    kind = KIND

    def __init__(self, stats_flush_results: int = FLUSH_RESULTS) -> None:
        self._stats_flush_results = stats_flush_results

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        spec = ProbeSpec.model_validate(job.spec)
        await self.run_series(job, Series(KIND, spec, job.id), ctx, started)

    async def run_series(
        self, job: JobRecord, series: Series, ctx: RunContext, started: Started
    ) -> None:
        started()
        ctx.events.describe(series.experiment_id, series.tags(), (job.kind, job.id))
        try:
            await self._from_checkpoint(job, series, ctx)
        except asyncio.CancelledError:
            if series.location is not None:  # its experiment's stop waits for the mark
                await mark_drained(ctx, job.kind, job.id)
            raise

    async def _from_checkpoint(self, job: JobRecord, series: Series, ctx: RunContext) -> None:
        results = results_of(ctx.store, job.kind)
        what = f"{job.kind} {job.id}"
        done = await until_stored(what, functools.partial(results.count, job.id))
        if done >= series.spec.count:
            return
        stats = StatsKeeper(ctx.store, job.id, self._stats_flush_results, job.kind)
        if done:  # a new experiment has nothing stored to take up
            await until_stored(what, stats.load)
        prober = ctx.probes.prober(series.spec.target())
        try:
            await self._probe_until_done(job, series, done, prober, ctx, stats)
        finally:
            await prober.aclose()

    async def _probe_until_done(
        self,
        job: JobRecord,
        series: Series,
        done: int,
        prober: HttpProber,
        ctx: RunContext,
        stats: StatsKeeper,
    ) -> None:
        skipped_before = int(job.progress.get("skipped_slots", 0))
        owner = fence_owner(ctx)
        # The first probe runs at once (as the original did), the rest on a drift-free grid.
        schedule = SlotSchedule(ctx.clock.monotonic(), series.spec.interval_s)
        while True:
            due_s = schedule.due_s
            await ctx.clock.sleep_until(due_s)
            started_s = ctx.clock.monotonic()
            exchange = await prober.probe()
            result = series.result(job.id, done, exchange, ctx, (started_s, due_s))
            done += 1
            progress = {"done": done, "skipped_slots": skipped_before + schedule.skipped}
            # Fenced: if another process took the experiment over, this write is dropped.
            update = ProgressUpdate(job.kind, job.id, progress, owner=owner)
            await self._store(ctx, stats, result, update)
            if done >= series.spec.count:
                return
            schedule.advance(ctx.clock.monotonic())

    async def _store(
        self,
        ctx: RunContext,
        stats: StatsKeeper,
        result: ProbeResult,
        update: ProgressUpdate,
    ) -> None:
        """Write the result with its checkpoint, and the histograms when they are due.

        A store outage pauses the probing (missed slots are skipped and counted), so the
        experiment still ends with exactly ``count`` results.
        """
        what = f"{result.kind} {result.job_id}"
        stats.add(result)
        histograms: list[HistogramUpdate] = []
        if stats.due():
            histograms = await until_stored(what, stats.updates)
        write = functools.partial(ctx.writer.write, [result], [update], histograms)
        await until_stored(what, write)
        if histograms:
            stats.flushed(histograms)
