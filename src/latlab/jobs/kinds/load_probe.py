"""The side probe of a load run: what latency does a *new* client see under this load?

One fresh-connection probe (LatLab's experiment prober, phases and all) every interval, on
the drift-free slot schedule experiments use, beside the load and measured apart from it. A
response counts as a success by the load's own rule (``expect_status``, else any status
below 400). Probes are few, so they run on the event loop of the API or of ``latlab load``;
the load itself never does.
"""

from __future__ import annotations

import asyncio
from typing import Any

from latlab.jobs.clock import Clock
from latlab.jobs.schedule import SlotSchedule
from latlab.measure.client import ProbeClient
from latlab.measure.errors import ERROR_KINDS
from latlab.measure.http_probe import ProbeTarget, ResponseChecks
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.summary import latency_summary
from latlab.measure.request import ExpectedStatus
from latlab.measure.stats import LatencyHistogram

_BELOW_400 = frozenset(range(100, 400))


def expected_status(codes: frozenset[int] | None) -> ExpectedStatus:
    """The codes as an :class:`ExpectedStatus`, whole classes written ``2xx``."""
    codes = _BELOW_400 if codes is None else codes
    parts: list[str] = []
    for first in range(100, 600, 100):
        block = set(range(first, first + 100))
        if block <= codes:
            parts.append(f"{first // 100}xx")
        else:
            parts.extend(str(code) for code in sorted(codes & block))
    return ExpectedStatus(",".join(parts), codes)


def side_probe_target(plan: LoadPlan) -> ProbeTarget:
    """The load's own request, sent on a fresh connection each time."""
    url = plan.url
    return ProbeTarget(
        host=url.host,
        port=url.port,
        path=url.target,
        scheme=url.scheme,
        timeout_s=plan.timeout_s,
        verify_tls=plan.verify_tls,
        keep_alive=False,
        request=plan.request,
        checks=ResponseChecks(status=expected_status(plan.expect_status)),
    )


def side_probe_summary(histogram: LatencyHistogram, interval_s: float) -> dict[str, Any]:
    """The side probe's figures: count, errors and the latency keys of the run's summary,
    and its errors by kind, every kind listed (0 when none) as in the run's own."""
    stats = histogram.stats()
    return {
        "interval_s": interval_s,
        "count": stats.count,
        "errors": stats.errors,
        **latency_summary(stats),
        "errors_by_kind": {kind: stats.errors_by_kind.get(kind, 0) for kind in ERROR_KINDS},
    }


class SideProbe:
    """Probes from :meth:`start` until :meth:`stop`, each result into ``histogram``."""

    def __init__(
        self,
        probes: ProbeClient,
        target: ProbeTarget,
        interval_s: float,
        histogram: LatencyHistogram,
        clock: Clock,
    ) -> None:
        self._probes = probes
        self._target = target
        self.interval_s = interval_s
        self.histogram = histogram
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self, first_s: float | None = None) -> None:
        """Probe from ``first_s`` (the clock's monotonic seconds; default now)."""
        first_s = self._clock.monotonic() if first_s is None else first_s
        self._task = asyncio.create_task(self._run(first_s), name="latlab-load-side-probe")

    async def stop(self) -> None:
        """Stop; a probe still in flight is not counted (as the load's requests are not)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])

    def summary(self) -> dict[str, Any]:
        return side_probe_summary(self.histogram, self.interval_s)

    async def _run(self, first_s: float) -> None:
        prober = self._probes.prober(self._target)
        schedule = SlotSchedule(first_s, self.interval_s)
        try:
            while True:
                await self._clock.sleep_until(schedule.due_s)
                exchange = await prober.probe()
                self.histogram.record(exchange.latency_ms, exchange.error)
                schedule.advance(self._clock.monotonic())
        finally:
            await prober.aclose()
