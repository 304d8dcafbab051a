"""Request counts per wall-clock period, written to InfluxDB (seed 003).

At every period boundary (a multiple of the period since the Unix epoch, so minutes start
at :00) the reporter reads the counts table (the sum of every worker's row) and hands the
difference since the last boundary to the exporter as one point:

    requests,request=GETs_per_minute requests_number=<n>i <period start, ns>

plus one ``requests_by_class,method=…,status_class=…`` point per non-zero cell. A period
with no requests is written too (0), so a gap means "not measured", never "idle". The
first interval after start-up is stamped with the start time instead of the period start,
so that a restart within a period adds a point rather than overwriting the one written at
shutdown. One process reports, whatever the number of workers: it reads their counts, so a
point always holds the total (points sharing series and timestamp would overwrite).
"""

from __future__ import annotations

from collections.abc import Callable

from latlab.exporters.influx import escape_tag
from latlab.exporters.periods import BatchSink, PeriodicReporter
from latlab.serving.counting import METHODS, REQUEST_CELLS, STATUS_CLASSES
from latlab.targets.counters import CountsTable

_SERIES = "requests,request=GETs_per_minute requests_number="
_CLASS_SERIES = [
    f"requests_by_class,method={escape_tag(method)},status_class={status_class} requests_number="
    for method in METHODS
    for status_class in STATUS_CLASSES
]


def period_lines(stamp_ns: int, counts: list[int]) -> list[str]:
    """The line-protocol points of one period (``counts``: the request cells)."""
    lines = [f"{_SERIES}{sum(counts)}i {stamp_ns}"]
    by_class = zip(_CLASS_SERIES, counts, strict=True)
    lines += [f"{series}{count}i {stamp_ns}" for series, count in by_class if count]
    return lines


class PeriodReporter(PeriodicReporter):
    """The request counts of each period, as differences of the counts table's totals."""

    def __init__(
        self,
        counts: CountsTable,
        exporter: BatchSink,
        period_s: float,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self._counts = counts
        self._refresh = refresh
        self._last = self._request_totals()
        super().__init__(exporter, period_s)

    def _request_totals(self) -> list[int]:
        if self._refresh is not None:
            self._refresh()
        return self._counts.totals()[:REQUEST_CELLS]

    def period_lines(self, stamp_ns: int) -> list[str]:
        totals = self._request_totals()
        deltas = [now - before for now, before in zip(totals, self._last, strict=True)]
        self._last = totals
        return period_lines(stamp_ns, deltas)
