"""The side probe judges a response by the load's own rule, and reports apart from it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from harness import CountingTarget, wait_for
from latlab.jobs.clock import SystemClock
from latlab.jobs.kinds.load_probe import SideProbe, expected_status, side_probe_target
from latlab.measure.client import ProbeClient
from latlab.measure.errors import ERROR_KINDS
from latlab.measure.load.plan import LoadPlan
from latlab.measure.request import parse_url
from latlab.measure.stats import LatencyHistogram


def probed(histogram: LatencyHistogram) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return histogram.count > 0

    return check


def test_the_default_rule_is_any_status_below_400_written_as_classes() -> None:
    assert str(expected_status(None)) == "1xx,2xx,3xx"
    assert 399 in expected_status(None)
    assert 400 not in expected_status(None)
    assert str(expected_status(frozenset({*range(200, 300), 404}))) == "2xx,404"


async def test_a_status_the_load_does_not_expect_is_an_error_of_the_side_probe() -> None:
    async with CountingTarget() as target:  # answers 200; a load expecting 404 fails on it
        url = parse_url(f"http://127.0.0.1:{target.port}/")
        for codes, errors in ((frozenset({404}), 1), (None, 0)):
            plan = LoadPlan(url, expect_status=codes)
            histogram = LatencyHistogram()
            target_of_plan = side_probe_target(plan)
            probe = SideProbe(ProbeClient(), target_of_plan, 0.05, histogram, SystemClock())
            probe.start()
            await wait_for(probed(histogram), what="a side probe")
            await probe.stop()
            summary = probe.summary()
            assert summary["interval_s"] == 0.05
            assert summary["errors"] == errors * summary["count"]
            by_kind = dict.fromkeys(ERROR_KINDS, 0) | {"bad_status": errors * summary["count"]}
            assert summary["errors_by_kind"] == by_kind  # every kind, as the run's own
