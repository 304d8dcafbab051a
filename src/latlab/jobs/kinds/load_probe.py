"""The side probe of a load run: what latency does a *new* client see under this load?

One fresh-connection probe (LatLab's experiment prober, phases and all) every interval, on
the drift-free slot schedule experiments use, beside the load and measured apart from it.
Probes are few, so they run on the API's event loop; the load itself never does.
"""

from __future__ import annotations

from latlab.jobs.clock import Clock
from latlab.jobs.schedule import SlotSchedule
from latlab.measure.client import ProbeClient
from latlab.measure.http_probe import ProbeTarget, ResponseChecks
from latlab.measure.load.plan import LoadPlan
from latlab.measure.request import parse_expect_status
from latlab.measure.stats import LatencyHistogram


def side_probe_target(plan: LoadPlan, expect_status: str | None) -> ProbeTarget:
    """The load's own request, sent on a fresh connection each time."""
    url = plan.url
    statuses = None if expect_status is None else parse_expect_status(expect_status)
    return ProbeTarget(
        host=url.host,
        port=url.port,
        path=url.target,
        scheme=url.scheme,
        timeout_s=plan.timeout_s,
        verify_tls=plan.verify_tls,
        keep_alive=False,
        request=plan.request,
        checks=ResponseChecks(status=statuses),
    )


class SideProbe:
    """Probes until cancelled, each result recorded into ``histogram``."""

    def __init__(
        self,
        probes: ProbeClient,
        target: ProbeTarget,
        interval_s: float,
        histogram: LatencyHistogram,
        clock: Clock,
    ) -> None:
        self._prober = probes.prober(target)
        self._interval_s = interval_s
        self.histogram = histogram
        self._clock = clock

    async def run(self) -> None:
        schedule = SlotSchedule(self._clock.monotonic(), self._interval_s)
        try:
            while True:
                await self._clock.sleep_until(schedule.due_s)
                exchange = await self._prober.probe()
                self.histogram.record(exchange.latency_ms, exchange.error)
                schedule.advance(self._clock.monotonic())
        finally:
            await self._prober.aclose()
