"""Load runs as a job kind: the worker processes of :class:`LoadPool`, driven by the job engine.

A run's load is made in child processes (``python -m latlab.measure.load.process``), never on
the API's event loop; the runner only reads their merged seconds and checkpoints each one: its
histograms (second ``n`` in bucket ``n``), the run's total and a progress line, in one write.

A pause cancels the runner, which closes the pool; a resume runs what is left (requests or
seconds) with the second numbering carried on, in processes started while the run was paused
(:mod:`~latlab.jobs.kinds.load_warm`). A run found running whose last attempt let go
gracefully (its process stopped by SIGTERM: the pool drained, every second stored, the drain
marked) goes on the same way, wherever it is adopted: a worker's shards are handed on. One whose
process died may have sent requests it never stored, so it is not resumed: it fails as
``interrupted`` with its seconds kept (:attr:`ResumePolicy.FAIL`). Rate and connections change
live (:meth:`LoadRunner.retune`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from latlab.exporters.base import LoadTags
from latlab.jobs.driver import JobFailed
from latlab.jobs.kinds.children import DRAINED_KEY
from latlab.jobs.kinds.load_feed import load_second_of, load_tags
from latlab.jobs.kinds.load_probe import SideProbe, side_probe_target
from latlab.jobs.kinds.load_progress import RunProgress, remaining_plan
from latlab.jobs.kinds.load_sharded import ShardedRuns
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.kinds.load_starts import PoolStarts
from latlab.jobs.kinds.load_stats import (
    KIND,
    PROBE_BUCKET,
    StoredTotals,
    final_progress,
    second_payload,
)
from latlab.jobs.kinds.load_warm import ResumeWarmth
from latlab.jobs.runner import (
    RUN_HERE,
    KindRunner,
    ResumePolicy,
    RunContext,
    Service,
    Started,
    fence_owner,
)
from latlab.jobs.supervise import until_stored
from latlab.measure.load.pool import START_LEAD_S, LoadPool
from latlab.measure.load.preflight import (
    TargetRefused,
    TargetUnreachable,
    check_reachable,
    resolve_target,
)
from latlab.measure.load.seconds import SecondStats
from latlab.storage import HistogramUpdate, JobRecord, JobState
from latlab.storage.records import TOTAL_BUCKET, ProgressUpdate

__all__ = ["KIND", "LoadRunner", "RetuneRefused"]

# A change asked while the run's pool starts waits this long for it: the target is checked
# first, with the run's timeout (10 s by default), but a pool is up in ~0.1 s as a rule.
POOL_START_WAIT_S = 5.0


class RetuneRefused(Exception):
    """The run cannot take this change now (HTTP 409)."""


@dataclass(slots=True)
class _LiveRun:
    """A run whose pool runs here: what a retune changes and where it records the change."""

    kind: str  # a run's, or a shard's
    pool: LoadPool
    progress: RunProgress
    ctx: RunContext
    owner: str | None

    @property
    def tags(self) -> LoadTags:
        return load_tags(self.pool.plan.url, self.pool.plan.request.method)


class LoadRunner(KindRunner):
    kind = KIND
    noun = "load run"  # what its messages call a job
    resume = ResumePolicy.FAIL

    def __init__(self, ca_file: str | None = None, sharded: ShardedRuns | None = None) -> None:
        self._ca_file = ca_file  # for https targets signed by a private CA (LATLAB_PROBE_CA_FILE)
        self._live: dict[int, _LiveRun] = {}
        self._starts = PoolStarts()  # a change asked while a pool starts waits for it
        self.sharded = sharded  # runs split over workers: followed here, run by shard jobs
        self.warmth = ResumeWarmth()  # processes started for the resume of a paused run

    def services(self, ctx: RunContext) -> list[Service]:
        return [Service(f"warm {self.noun} processes", self.warmth.processes.keep)]

    async def close(self, ctx: RunContext) -> None:
        await self.warmth.close()

    def _sharded(self, spec: LoadRunSpec) -> ShardedRuns | None:
        """Who follows the run, if it is made by shards on workers."""
        return self.sharded if spec.sharded else None

    def _sharded_job(self, job: JobRecord) -> ShardedRuns | None:
        if self.sharded is None:  # a shard's own runner: its spec is no run's
            return None
        return self._sharded(LoadRunSpec.model_validate(job.spec))

    def resume_policy(self, job: JobRecord) -> ResumePolicy:
        """A sharded run's follower resumes (its shards ran on); so does a run whose last
        attempt drained (every request it sent is stored: a graceful stop). One whose
        process died cannot: what it sent last is unknown."""
        drained = job.progress.get(DRAINED_KEY) is not None
        return ResumePolicy.RESUME if drained or self._sharded_job(job) else self.resume

    def location(self, job: JobRecord) -> str | None:
        """A sharded run is followed by the control plane; its shards go to the workers."""
        return RUN_HERE if self._sharded_job(job) else super().location(job)

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        self.warmth.forget((job.kind, job.id))
        if (sharded := self._sharded_job(job)) is not None:
            await sharded.deleting(job, ctx)

    async def paused(self, job: JobRecord, ctx: RunContext) -> None:
        self.warmth.paused((job.kind, job.id))
        if (sharded := self._sharded_job(job)) is not None:
            await sharded.paused(job)

    async def spec_of(self, job: JobRecord, ctx: RunContext) -> LoadRunSpec:
        """What the job sends (a shard's runner derives it from its run's)."""
        return LoadRunSpec.model_validate(job.spec)

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        spec = await self.spec_of(job, ctx)
        if (sharded := self._sharded(spec)) is not None:
            await sharded.run(job, spec, ctx, started)
            return
        with self._starts.starting(job.id):
            await self._run_here(job, spec, ctx, started)

    async def _run_here(
        self, job: JobRecord, spec: LoadRunSpec, ctx: RunContext, started: Started
    ) -> None:
        progress = RunProgress.of(job, spec)
        read = functools.partial(StoredTotals.read, ctx.store, job, spec)
        stored = await until_stored(f"load run {job.id}", read)
        plan = remaining_plan(spec, progress, self._ca_file)
        if plan is not None:
            try:
                address = await resolve_target(plan.url, ctx.probes.policy)
                if progress.seconds == 0:  # a dead target fails a new run at once (CLI: exit 1)
                    https = plan.url.scheme == "https"
                    tls = ctx.probes.tls_context(plan.verify_tls) if https else None
                    await check_reachable(plan.url, address, tls, plan.timeout_s)
            except (TargetRefused, TargetUnreachable) as exc:
                raise JobFailed(str(exc)) from exc  # the user's to fix: its message alone
            pool = LoadPool(plan, address, self.warmth.processes.take)
            live = _LiveRun(job.kind, pool, progress, ctx, fence_owner(ctx))
            await self._run_pool(job, spec, live, stored, started)
        started()  # a run with nothing left ends here
        summary = stored.summary(spec, progress.elapsed_s)
        values = {**progress.values(), **final_progress(spec, summary)}
        update = ProgressUpdate(job.kind, job.id, values, fence_owner(ctx))
        await until_stored(f"load run {job.id}", functools.partial(ctx.writer.write, [], [update]))

    async def _run_pool(
        self,
        job: JobRecord,
        spec: LoadRunSpec,
        live: _LiveRun,
        stored: StoredTotals,
        started: Started,
    ) -> None:
        side = self._side_probe(spec, live, stored)
        self.warmth.forget((job.kind, job.id))
        await self._undrained(job.id, live)
        try:
            await live.pool.start()
            count_from_s = perf_counter() + START_LEAD_S + live.pool.plan.warmup_s
            self._live[job.id] = live  # only now may a retune reach its workers
            self._starts.up(job.id)
            started()
            if side is not None:  # from when counting starts, on the clock's own time
                side.start(live.ctx.clock.monotonic() + (count_from_s - perf_counter()))
            record = functools.partial(
                self._record_seconds,
                job.id,
                live,
                stored,
                count_from_s,
                (live.progress.seconds, live.progress.elapsed_s),
            )
            try:
                await record()
            except asyncio.CancelledError:
                # A pause, stop or graceful shutdown keeps the second in progress; only a
                # drain that stored everything is marked (a resume from it is exact).
                if await _drained(live.pool, record):
                    await _shielded(_mark_drained(job.id, live))
                self.warmth.halted((job.kind, job.id), live.pool.workers, live.ctx.store)
                raise
        finally:
            self._live.pop(job.id, None)
            if side is not None:
                await side.stop()
            await _closed(live.pool)

    async def _undrained(self, job_id: int, live: _LiveRun) -> None:
        """Before the first request: this attempt has not drained (yet). Should its process
        die, the run is not resumed on an earlier attempt's mark."""
        update = ProgressUpdate(live.kind, job_id, {DRAINED_KEY: None}, live.owner)
        write = functools.partial(live.ctx.writer.write, [], [update])
        await until_stored(f"{self.noun} {job_id}", write)

    def _side_probe(
        self, spec: LoadRunSpec, live: _LiveRun, stored: StoredTotals
    ) -> SideProbe | None:
        interval_s = spec.probe_interval_s()
        if interval_s is None or stored.probe is None:
            return None
        target = side_probe_target(live.pool.plan)
        return SideProbe(live.ctx.probes, target, interval_s, stored.probe, live.ctx.clock)

    async def _record_seconds(
        self,
        job_id: int,
        live: _LiveRun,
        stored: StoredTotals,
        count_from_s: float,
        before: tuple[int, float],
    ) -> None:
        """Checkpoint every merged second, numbered on from the ``before`` seconds (and
        elapsed time) this stretch of the run started after."""
        progress, pool = live.progress, live.pool
        first, elapsed_before_s = before
        # Seconds of this stretch begin at wall time counting_from + second (for live feeds).
        progress.counting_from = time.time() + (count_from_s - perf_counter()) - first
        async for second in pool.seconds():
            local = second.second
            second.second = first + local
            stored.total.merge(second)
            progress.seconds = second.second + 1
            progress.requests, progress.errors = stored.total.requests, stored.total.errors
            progress.elapsed_s = elapsed_before_s + local + 1
            progress.rate, progress.connections = pool.rate, pool.connections
            await self._store_second(job_id, live, second, stored)
        ran_s = perf_counter() - count_from_s
        if pool.plan.duration_s is not None:
            ran_s = min(ran_s, pool.plan.duration_s)
        progress.elapsed_s = elapsed_before_s + max(0.0, min(ran_s, progress.seconds - first))

    async def _store_second(
        self, job_id: int, live: _LiveRun, second: SecondStats, stored: StoredTotals
    ) -> None:
        """One checkpoint: the second, the run's total (and side probe) and the progress."""
        began_s = (live.progress.counting_from or 0.0) + second.second
        kind = live.kind
        histograms = [
            HistogramUpdate(kind, job_id, second.second, second_payload(second, began_s)),
            HistogramUpdate(kind, job_id, TOTAL_BUCKET, stored.total.to_payload()),
        ]
        if stored.probe is not None:
            probe = stored.probe.to_payload()
            histograms.append(HistogramUpdate(kind, job_id, PROBE_BUCKET, probe))
        update = ProgressUpdate(kind, job_id, live.progress.values(second), live.owner)
        write = functools.partial(live.ctx.writer.write, [], [update], histograms)
        await until_stored(f"load run {job_id}", write)
        if kind == KIND:  # a shard's seconds reach the feeds merged, through its run
            counting_from = live.progress.counting_from or 0.0
            live.ctx.events.load_second(live.tags, load_second_of(job_id, second, counting_from))

    def workers_running(self, job_id: int) -> int | None:
        """The worker processes of the run's pool here now, or None if it runs elsewhere."""
        live = self._live.get(job_id)
        return None if live is None else live.pool.workers

    def runs_here(self, job_id: int) -> bool:
        """Whether the run's pool runs here, or is being started here."""
        return self.workers_running(job_id) is not None or job_id in self._starts

    async def until_live(self, job_id: int, within_s: float) -> bool:
        """Whether the run's pool runs here, once it is up if it is being started."""
        if self.workers_running(job_id) is None:
            await self._starts.wait(job_id, within_s)
        return self.workers_running(job_id) is not None

    async def retune(
        self, job: JobRecord, *, rate: float | None = None, connections: int | None = None
    ) -> dict[str, Any]:
        """Change a running run's rate and/or connections within a second, and remember them
        for a resume. :class:`RetuneRefused` unless the run is open-model (for a rate) and
        its pool runs here."""
        if job.state is not JobState.RUNNING:
            message = f"{self.noun} {job.id} is {job.state}: only a running run can be changed"
            raise RetuneRefused(message)
        await self.until_live(job.id, POOL_START_WAIT_S)
        live = self._live.get(job.id)
        if live is None:
            raise RetuneRefused(f"{self.noun} {job.id} is not running in this process")
        if rate is not None and live.pool.rate is None:
            raise RetuneRefused(f"{self.noun} {job.id} is a closed-model run: it has no rate")
        if connections is not None and connections < live.pool.workers:
            message = f"{self.noun} {job.id} runs {live.pool.workers} worker processes"
            raise RetuneRefused(f"{message}: it needs a connection for each")
        if connections is not None:
            live.pool.set_connections(connections)
        if rate is not None:
            live.pool.set_rate(rate)
        live.progress.rate, live.progress.connections = live.pool.rate, live.pool.connections
        values = {"rate": live.progress.rate, "connections": live.progress.connections}
        update = ProgressUpdate(job.kind, job.id, values, live.owner)
        write = functools.partial(live.ctx.writer.write, [], [update])
        await until_stored(f"{self.noun} {job.id}", write)
        return values

    async def stopped(
        self, job: JobRecord, ctx: RunContext, *, ran_here: bool
    ) -> Mapping[str, Any]:
        """A stopped run keeps its summary and thresholds, judged on what it measured."""
        self.warmth.forget((job.kind, job.id))
        spec = await self.spec_of(job, ctx)
        if (sharded := self._sharded(spec)) is not None:
            return await sharded.stopped(job, spec, ctx, ran_here=ran_here)
        read = functools.partial(StoredTotals.read, ctx.store, job, spec)
        stored = await until_stored(f"load run {job.id} stop", read)
        summary = stored.summary(spec, float(job.progress.get("elapsed_s", 0.0)))
        return final_progress(spec, summary)


DRAIN_TIMEOUT_S = 5.0


async def _drained(pool: LoadPool, record: Callable[[], Awaitable[None]]) -> bool:
    """Stop the workers and store the seconds they still report (the one in progress at a
    pause or stop); whether every request the target may have seen is stored."""
    pool.stop()
    return await _shielded(record()) and pool.accounted


async def _mark_drained(job_id: int, live: _LiveRun) -> None:
    """Say the seconds are all stored: a sharded run's stop waits for it from its shards."""
    update = ProgressUpdate(live.kind, job_id, {DRAINED_KEY: time.time()}, live.owner)
    await live.ctx.writer.write([], [update])


async def _shielded(work: Awaitable[None]) -> bool:
    """``work`` in a cancelled task: bounded, and given up if cancelled again; whether it
    completed."""
    running = asyncio.ensure_future(work)
    with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):
        await asyncio.wait_for(asyncio.shield(running), DRAIN_TIMEOUT_S)
        return True
    if not running.done():
        running.cancel()
    return False


async def _closed(pool: LoadPool) -> None:
    """Close the pool even if the runner is cancelled again meanwhile."""
    closing = asyncio.ensure_future(pool.close())
    try:
        await asyncio.shield(closing)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await closing
        raise
