"""Read paths over load runs, for the API (and, later, the dashboard): one run, its figures,
its per-second rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.kinds.load_stats import KIND, StoredTotals, second_row
from latlab.jobs.queries import JobQueries
from latlab.storage import JobRecord, Page


@dataclass(frozen=True, slots=True)
class LoadFigures:
    stats: dict[str, Any]
    thresholds: list[dict[str, Any]] | None


class LoadRunQueries(JobQueries):
    kind = KIND

    async def figures(self, job: JobRecord) -> LoadFigures:
        """The run's summary from its stored total (so far, if it still runs), and its
        thresholds once it ended with them judged."""
        spec = LoadRunSpec.model_validate(job.spec)
        stored = await StoredTotals.read(self._store, job, spec)
        stats = stored.summary(spec, float(job.progress.get("elapsed_s", 0.0)))
        thresholds = job.progress.get("thresholds")
        return LoadFigures(stats, list(thresholds) if isinstance(thresholds, list) else None)

    async def seconds(self, job_id: int, *, offset: int, limit: int) -> Page[dict[str, Any]]:
        job = await self.get(job_id)
        rows = await self._rows(job.id, offset, limit)
        return Page(rows, int(job.progress.get("seconds", 0)))

    async def seconds_from(self, job_id: int, size: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Every stored second's row, ``size`` at a time (exports)."""
        first = 0
        while True:
            rows = await self._rows(job_id, first, size)
            if rows:
                yield rows
            if len(rows) < size:
                return
            first += size

    async def _rows(self, job_id: int, first: int, count: int) -> list[dict[str, Any]]:
        last = first + count - 1
        stored = await self._store.histograms.read(KIND, job_id, max(first, 0), last)
        return [second_row(payload) for payload in stored.values()]
