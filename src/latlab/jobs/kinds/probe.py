"""Experiments: a probe job measures ``count`` requests to one URL, ``interval_s`` apart.

What it measures is its spec (``probe_spec``); this module runs it.
"""

from __future__ import annotations

import dataclasses
import functools

from latlab.exporters.base import ProbeTags
from latlab.jobs.kinds.probe_spec import ProbeSpec
from latlab.jobs.kinds.probe_stats import FLUSH_RESULTS, StatsKeeper
from latlab.jobs.runner import KindRunner, RunContext, Started, fence_owner
from latlab.jobs.schedule import SlotSchedule
from latlab.jobs.supervise import until_stored
from latlab.measure.http_probe import Exchange, HttpProber
from latlab.storage import HistogramUpdate, JobRecord, ProbeResult
from latlab.storage.records import ProgressUpdate

KIND = "probe"


def to_result(
    job_id: int, seq: int, exchange: Exchange, ctx: RunContext, started_s: float, due_s: float
) -> ProbeResult:
    return ProbeResult(
        job_id=job_id,
        seq=seq,
        timestamp=ctx.clock.to_utc(started_s),
        scheduled_at=ctx.clock.to_utc(due_s),
        **dataclasses.asdict(exchange),
    )


class ProbeRunner(KindRunner):
    """Runs an experiment from its checkpoint: results already stored are never redone."""

    kind = KIND

    def __init__(self, stats_flush_results: int = FLUSH_RESULTS) -> None:
        self._stats_flush_results = stats_flush_results

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()
        spec = ProbeSpec.model_validate(job.spec)
        ctx.events.describe(job.id, ProbeTags(spec.host, spec.port, spec.path))
        count = functools.partial(ctx.store.probe_results.count, job.id)
        done = await until_stored(f"experiment {job.id}", count)
        if done >= spec.count:
            return
        stats = StatsKeeper(ctx.store, job.id, self._stats_flush_results)
        if done:  # a new experiment has nothing stored to take up
            await until_stored(f"experiment {job.id}", stats.load)
        prober = ctx.probes.prober(spec.target())
        try:
            await self._probe_until_done(job, spec, done, prober, ctx, stats)
        finally:
            await prober.aclose()

    async def _probe_until_done(
        self,
        job: JobRecord,
        spec: ProbeSpec,
        done: int,
        prober: HttpProber,
        ctx: RunContext,
        stats: StatsKeeper,
    ) -> None:
        skipped_before = int(job.progress.get("skipped_slots", 0))
        owner = fence_owner(ctx)
        # The first probe runs at once (as the original did), the rest on a drift-free grid.
        schedule = SlotSchedule(ctx.clock.monotonic(), spec.interval_s)
        while True:
            due_s = schedule.due_s
            await ctx.clock.sleep_until(due_s)
            started_s = ctx.clock.monotonic()
            exchange = await prober.probe()
            result = to_result(job.id, done, exchange, ctx, started_s, due_s)
            done += 1
            progress = {"done": done, "skipped_slots": skipped_before + schedule.skipped}
            # Fenced: if another process took the experiment over, this write is dropped.
            update = ProgressUpdate(KIND, job.id, progress, owner=owner)
            await self._store(ctx, stats, result, update)
            if done >= spec.count:
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
        what = f"experiment {result.job_id}"
        stats.add(result)
        histograms: list[HistogramUpdate] = []
        if stats.due():
            histograms = await until_stored(what, stats.updates)
        write = functools.partial(ctx.writer.write, [result], [update], histograms)
        await until_stored(what, write)
        if histograms:
            stats.flushed(histograms)
