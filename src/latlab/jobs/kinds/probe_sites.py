"""Experiments at several locations: a series of probes at each, each a job of its own.

An experiment with ``locations`` probes nothing itself. At its first start the control
plane process creates a job of kind ``probe_site`` per location (pinned there, so a worker
started with ``--location`` runs it) and follows them: the experiment's checkpoint sums
their progress, and it completes when every series has its ``count`` results. A series is
an experiment's run in all but its results, which carry its location and are kept under
its own job (``seq`` 0..count-1 at each location, none twice: the series is leased,
fenced and resumed as any job). Pause, resume, stop and delete of the experiment act on
its series; one that fails fails the experiment.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from latlab.jobs.driver import JobFailed
from latlab.jobs.kinds.children import Children, Parents
from latlab.jobs.kinds.probe import KIND, ProbeRunner, Series
from latlab.jobs.kinds.probe_spec import MAX_LOCATIONS, ProbeSpec
from latlab.jobs.kinds.probe_stats import FLUSH_RESULTS, SITE_KIND
from latlab.jobs.kinds.spec_checks import LOCATION_MAX, LOCATION_PATTERN
from latlab.jobs.runner import RUN_HERE, RunContext, Started, fence_owner
from latlab.jobs.state import Action
from latlab.jobs.supervise import until_stored
from latlab.storage import FencedOut, JobRecord, JobState, StoreUnavailable
from latlab.storage.records import ProgressUpdate

if TYPE_CHECKING:  # the manager runs the kinds: theirs to be handed it, not to import it
    pass

__all__ = ["SITES", "SITE_KIND", "ExperimentRunner", "ExperimentSites", "SiteRunner", "SiteSpec"]

SITES = Children(SITE_KIND, key="sites", parent="experiment", noun="series")
FOLLOW_EVERY_S = 0.2  # how often an experiment reads its series' progress


class SiteSpec(BaseModel):
    """A series' spec: which experiment, at which of its locations; the rest is the
    experiment's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: StrictInt = Field(ge=1)
    index: StrictInt = Field(ge=0, lt=MAX_LOCATIONS)
    location: str = Field(max_length=LOCATION_MAX, pattern=LOCATION_PATTERN)


class SiteRunner(ProbeRunner):
    """Runs one series: the experiment's spec (validated again here: a worker trusts
    nothing it reads), its results tagged with the location."""

    kind = SITE_KIND

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        site = SiteSpec.model_validate(job.spec)
        experiment = await SITES.parent_of(job, ctx, KIND, "experiment")
        await SITES.belongs(job, experiment)
        spec = ProbeSpec.model_validate(experiment.spec)
        if site.location not in spec.sites:
            raise JobFailed(f"experiment {site.experiment} has no series at {site.location}")
        series = Series(SITE_KIND, spec, site.experiment, site.location)
        await self.run_series(job, series, ctx, started)


class ExperimentRunner(ProbeRunner):
    """Runs an experiment: its own series, or, with ``locations``, none itself: it follows
    a series at each location, from the control plane."""

    def __init__(
        self, stats_flush_results: int = FLUSH_RESULTS, sites: ExperimentSites | None = None
    ) -> None:
        super().__init__(stats_flush_results)
        self.sites = sites or ExperimentSites()

    def location(self, job: JobRecord) -> str | None:
        return RUN_HERE if job.spec.get("locations") else super().location(job)

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        if not job.spec.get("locations"):
            await super().run(job, ctx, started)
            return
        await self.sites.run(job, ProbeSpec.model_validate(job.spec), ctx, started)

    async def paused(self, job: JobRecord, ctx: RunContext) -> None:
        await self.sites.paused(job)

    async def stopped(self, job: JobRecord, ctx: RunContext, *, ran_here: bool) -> dict[str, Any]:
        return await self.sites.stopped(job, ctx)

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        await self.sites.deleting(job, ctx)


class ExperimentSites(Parents):
    """Runs, pauses and stops experiments at several locations."""

    noun = "experiments at several locations"

    async def run(self, job: JobRecord, spec: ProbeSpec, ctx: RunContext, started: Started) -> None:
        jobs = self._bound()
        specs = [
            SiteSpec(experiment=job.id, index=index, location=location).model_dump()
            for index, location in enumerate(spec.sites)
        ]
        ids = await SITES.made(job, ctx, jobs, specs)
        await SITES.act(jobs, await SITES.halted(ctx, ids), Action.START)
        started()
        try:
            await _follow(job, ids, ctx)
        except (StoreUnavailable, FencedOut):
            raise  # run again once the store answers, or by its new owner: its series go on
        except Exception:  # it failed: no series may go on without it
            await SITES.act(jobs, ids, Action.STOP)
            raise

    async def paused(self, job: JobRecord) -> None:
        await SITES.act(self._bound(), SITES.ids(job), Action.PAUSE)

    async def stopped(self, job: JobRecord, ctx: RunContext) -> dict[str, Any]:
        """Stop the series; keep their progress once each has stored its last result."""
        ids = SITES.ids(job)
        if not ids:
            return {}
        await SITES.stop(self._bound(), ctx, ids)
        return summed(ids, await SITES.read(ctx, ids))

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        """Before the experiment goes: its series stop (their last results stored) and go."""
        await SITES.stop_and_delete(self._bound(), ctx, job)


async def _follow(job: JobRecord, ids: list[int], ctx: RunContext) -> None:
    """Until every series has completed, keeping the experiment's progress their sum."""
    owner, written = fence_owner(ctx), dict(job.progress)
    while True:  # the series run in other processes: their progress is in the store
        sites = await SITES.read(ctx, ids)
        progress = summed(ids, sites)
        if any(written.get(key) != value for key, value in progress.items()):
            update = ProgressUpdate(job.kind, job.id, progress, owner)
            write = functools.partial(ctx.writer.write, [], [update])
            await until_stored(f"experiment {job.id}", write)
            written.update(progress)
        failure = _failure(ids, sites)
        if failure is not None:
            raise JobFailed(failure)
        if all(site.state is JobState.COMPLETED for site in sites.values()):
            return
        await asyncio.sleep(FOLLOW_EVERY_S)


def summed(ids: list[int], sites: dict[int, JobRecord]) -> dict[str, Any]:
    """The experiment's progress: its series', summed, and each series' own."""
    by_location = {
        str(site.spec.get("location")): int(site.progress.get("done", 0))
        for site in (sites[site_id] for site_id in ids if site_id in sites)
    }
    skipped = sum(int(site.progress.get("skipped_slots", 0)) for site in sites.values())
    return {"done": sum(by_location.values()), "skipped_slots": skipped, "by_location": by_location}


def _failure(ids: list[int], sites: dict[int, JobRecord]) -> str | None:
    """Why the experiment cannot complete: a series failed, was stopped, or is gone."""
    for site_id in ids:
        site = sites.get(site_id)
        if site is None:
            return f"series {site_id} is gone"
        if site.state in (JobState.FAILED, JobState.STOPPED):
            where = site.spec.get("location")
            return f"the series at {where} {site.state}: {site.error or site.state}"
    return None
