"""Every stored probe result as an InfluxDB point, through the bounded ``InfluxExporter``.

    probe,experiment=12,host=example.org,location=eu-1,path=/api,port=443,status_class=2xx
        latency_ms=12.5,connect_ms=3.1,ttfb_ms=11.9,status_code=200i,seq=41i 1700000000123456000

(one line). Tag keys are in lexicographic order, as InfluxDB prefers them, which puts
``status_class`` last: the tags before it are one string per experiment, built and escaped
once and cached until the experiment is deleted (one per location of an experiment run at
several; ``location`` is left out of the others'). An empty tag value is not allowed in line
protocol, so a tag the experiment did not describe is left out. Optional timings that were
not measured (``None``) are left out, and so are non-finite ones (line protocol has no
NaN or infinity, and InfluxDB would refuse the whole request for one). The timestamp is the
probe's start, in nanoseconds (results have microseconds).

This runs on the event loop for every probe: a line costs a few microseconds, and a batch
of results is handed to the exporter as one string.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from latlab.exporters.base import ProbeTags, SinkBase, StateChange, status_class
from latlab.exporters.influx import InfluxExporter, escape_tag
from latlab.storage.records import ProbeResult

MEASUREMENT = "probe"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)
MAX_CACHED = 10_000  # experiments whose tag strings are kept; the oldest goes first


def series_prefix(experiment_id: int, tags: ProbeTags) -> str:
    """The line up to the value of its last tag, ``status_class``."""
    pairs = [
        ("experiment", str(experiment_id)),
        ("host", tags.host),
        ("location", tags.location),
        ("path", tags.path),
        ("port", str(tags.port) if tags.port else ""),
    ]
    escaped = "".join(f",{key}={escape_tag(value)}" for key, value in pairs if value)
    return f"{MEASUREMENT}{escaped},status_class="


def probe_line(prefix: str, result: ProbeResult) -> str:
    """One result as a point, after ``series_prefix``."""
    fields = f"latency_ms={result.latency_ms!r}"
    # Unrolled rather than looped over (name, value) pairs: this is paid for every probe.
    if result.connect_ms is not None and math.isfinite(result.connect_ms):
        fields += f",connect_ms={result.connect_ms!r}"
    if result.ttfb_ms is not None and math.isfinite(result.ttfb_ms):
        fields += f",ttfb_ms={result.ttfb_ms!r}"
    if result.dns_ms is not None and math.isfinite(result.dns_ms):
        fields += f",dns_ms={result.dns_ms!r}"
    started = result.timestamp
    if started.tzinfo is None:  # records are UTC; a naive one would be read as local time
        started = started.replace(tzinfo=UTC)
    stamp_ns = (started - EPOCH) // ONE_MICROSECOND * 1000  # exact, unlike float seconds
    return (
        f"{prefix}{status_class(result)} {fields},"
        f"status_code={result.status_code}i,seq={result.seq}i {stamp_ns}"
    )


class InfluxProbeSink(SinkBase):
    """A sink of the event seam: probe results to ``exporter`` (started and closed by its owner)."""

    def __init__(self, exporter: InfluxExporter) -> None:
        self._exporter = exporter
        # experiment id -> location -> the tags its prefix was built of, the prefix
        self._prefixes: dict[int, dict[str, tuple[ProbeTags, str]]] = {}

    def probed(self, experiment_id: int, tags: ProbeTags, results: Sequence[ProbeResult]) -> None:
        if not results:
            return
        by_location = self._prefixes.get(experiment_id)
        if by_location is None:
            by_location = self._prefixes[experiment_id] = {}
            if len(self._prefixes) > MAX_CACHED:  # a worker never hears its series' experiments end
                del self._prefixes[next(iter(self._prefixes))]
        cached = by_location.get(tags.location)
        # Tags differ when the seam had none yet (described late): the first time only.
        if cached is None or (cached[0] is not tags and cached[0] != tags):
            cached = by_location[tags.location] = (tags, series_prefix(experiment_id, tags))
        prefix = cached[1]
        lines = [probe_line(prefix, result) for result in results]
        self._exporter.submit("\n".join(lines), len(lines))

    def state_changed(self, change: StateChange) -> None:
        # An experiment that ended writes no more points: its prefix would only take room.
        if change.kind == "probe" and change.state.ended:
            self._prefixes.pop(change.job_id, None)

    def deleted(self, kind: str, job_id: int) -> None:
        if kind == "probe":
            self._prefixes.pop(job_id, None)

    @property
    def experiments(self) -> int:
        """Experiments whose tag string is cached."""
        return len(self._prefixes)
