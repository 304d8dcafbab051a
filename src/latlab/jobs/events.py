"""The event seam: every measurement and state change, to every sink, after it is stored.

The batch writer is the first subscriber and the only durable one: runners hand it their
records and it calls :meth:`Events.committed` once they are committed (fenced-out records
left out). The other sinks (InfluxDB, Prometheus, the live feed) are told only then, inline
and without waiting: each keeps its own bounded backlog or drops, so none of them can slow a
probe or lose a stored result. State changes come from the job manager once the store has
moved the state.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence

from latlab.exporters.base import LoadSecond, LoadTags, ProbeTags, Sink, StateChange
from latlab.storage.records import JobRecord, ProbeResult, Record, SiteResult

log = logging.getLogger("latlab.events")
JobKey = tuple[str, int]
PROBE = ProbeResult.kind
_DESCRIBED = (PROBE, SiteResult.kind)  # the kinds whose runners describe what they measure


class Events:
    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)
        # (kind, job id) of a probe or a series -> the experiment its results belong to, tags
        self._tags: dict[tuple[str, int], tuple[int, ProbeTags]] = {}

    @property
    def described(self) -> int:
        """Experiments whose tags are kept (running or paused ones)."""
        return len(self._tags)

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def describe(self, experiment_id: int, tags: ProbeTags, series: JobKey | None = None) -> None:
        """What an experiment measures; its runner says so before its first probe. The
        runner of one series of an experiment run at several locations names its job."""
        self._tags[series or (PROBE, experiment_id)] = (experiment_id, tags)

    def committed(self, records: Sequence[Record]) -> None:
        """The writer's hook: ``records`` are committed. Probe results go to every sink,
        as results of their experiment (a series' with its location in the tags)."""
        by_job: dict[JobKey, list[ProbeResult]] = {}
        for record in records:
            if isinstance(record, ProbeResult):
                by_job.setdefault((record.kind, record.job_id), []).append(record)
        for key, stored in by_job.items():
            experiment_id, tags = self._tags.get(key) or (key[1], ProbeTags("", 0, ""))
            results = stored
            if key[0] != PROBE:  # a series': told as results of its experiment
                results = [dataclasses.replace(result, job_id=experiment_id) for result in stored]
            for sink in self._sinks:
                try:
                    sink.probed(experiment_id, tags, results)
                except Exception:
                    log.exception("sink %r failed on results of experiment %d", sink, key[1])

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        """A load run's runner: ``second`` is stored. To every sink."""
        for sink in self._sinks:
            try:
                sink.load_second(tags, second)
            except Exception:
                log.exception(
                    "sink %r failed on second %d of load run %d", sink, second.second, second.run_id
                )

    def state_changed(self, job: JobRecord) -> None:
        change = StateChange(job.kind, job.id, job.state, job.error, job.updated_at)
        if job.kind in _DESCRIBED and job.state.ended:
            self._tags.pop((job.kind, job.id), None)  # its last result was committed
        for sink in self._sinks:
            try:
                sink.state_changed(change)
            except Exception:
                log.exception("sink %r failed on %s", sink, change)

    def deleted(self, kind: str, job_id: int) -> None:
        if kind in _DESCRIBED:
            self._tags.pop((kind, job_id), None)
        for sink in self._sinks:
            try:
                sink.deleted(kind, job_id)
            except Exception:
                log.exception("sink %r failed on the deletion of %s job %d", sink, kind, job_id)
