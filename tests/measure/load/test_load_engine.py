"""One load worker on the test's loop against a scripted target: counts, errors, both models."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from time import perf_counter
from typing import Any

import pytest
from scripted import OK, Answer, ScriptedTarget

from latlab.measure.load.engine import STOP_DRAIN_S, LoadWorker
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.seconds import SecondStats
from latlab.measure.load.summary import RunTotals
from latlab.measure.request import RequestSpec, parse_url
from services import free_port

LOCAL = (int(socket.AF_INET), "127.0.0.1")


def plan_for(port: int, **options: Any) -> LoadPlan:
    options.setdefault("connections", 4)
    if "requests" in options:
        options.setdefault("duration_s", None)
    return LoadPlan(url=parse_url(f"http://127.0.0.1:{port}/x"), **options)


async def run(
    plan: LoadPlan, steer: Callable[[LoadWorker], None] | None = None
) -> tuple[list[SecondStats], dict[str, Any]]:
    seconds: list[SecondStats] = []
    worker = LoadWorker(plan, LOCAL, seconds.append)
    if steer is not None:
        steer(worker)
    start_s = perf_counter()
    await worker.run(start_s, start_s + plan.warmup_s)
    totals = RunTotals(open_model=plan.open_model)
    for second in seconds:
        totals.add(second)
    return seconds, totals.summary(duration_s=max(len(seconds), 1))


async def test_closed_model_sends_exactly_n_and_the_target_counts_each() -> None:
    async with ScriptedTarget() as target:
        _, summary = await run(plan_for(target.port, requests=3000, connections=8))
    assert summary["requests"] == target.requests == 3000
    assert summary["errors"] == 0
    assert summary["status"]["2xx"] == 3000
    assert target.connections == 8  # kept alive


async def test_answers_that_close_the_connection_are_reconnected_and_counted() -> None:
    def every_tenth_closes(n: int) -> Answer:
        return Answer(close=n % 10 == 0)

    async with ScriptedTarget(every_tenth_closes) as target:
        _, summary = await run(plan_for(target.port, requests=500, connections=2))
    assert summary["requests"] == target.requests == 500
    assert summary["errors"] == 0
    assert target.connections >= 50


async def test_a_refused_connection_is_a_finished_request_of_kind_refused() -> None:
    _, summary = await run(plan_for(free_port(), requests=20, connections=2))
    assert summary["requests"] == summary["errors"] == 20
    assert summary["errors_by_kind"]["refused"] == 20


async def test_a_silent_target_times_out() -> None:
    async with ScriptedTarget(lambda _n: Answer(delay_s=30)) as target:
        started_s = perf_counter()
        _, summary = await run(plan_for(target.port, requests=2, connections=2, timeout_s=0.2))
    assert summary["errors_by_kind"]["timeout"] == 2
    assert perf_counter() - started_s < 5  # cut by the timeout, not by the target


async def test_an_unexpected_status_is_an_error_with_its_latency_kept() -> None:
    async with ScriptedTarget(lambda n: Answer(status=503 if n % 2 else 200)) as target:
        _, summary = await run(plan_for(target.port, requests=100, connections=1))
    assert summary["errors"] == summary["errors_by_kind"]["bad_status"] == 50
    assert summary["status"] == {"1xx": 0, "2xx": 50, "3xx": 0, "4xx": 0, "5xx": 50}
    assert summary["latency_ms"]["max"] is not None


async def test_expect_status_decides_what_counts_as_success() -> None:
    async with ScriptedTarget(lambda _n: Answer(status=404)) as target:
        plan = plan_for(target.port, requests=10, expect_status=frozenset({404}))
        _, summary = await run(plan)
    assert summary["errors"] == 0


async def test_a_close_before_the_first_answer_is_an_error_but_an_idle_close_is_not() -> None:
    async with ScriptedTarget(lambda n: None if n == 1 else OK) as target:
        _, summary = await run(plan_for(target.port, requests=10, connections=1))
    assert summary["requests"] == 10
    assert summary["errors"] == 1
    async with ScriptedTarget(lambda n: None if n == 5 else OK) as target:
        _, summary = await run(plan_for(target.port, requests=10, connections=1))
    # A kept-alive connection closed as the request went out: sent again, not an error.
    assert (summary["requests"], summary["errors"], target.requests) == (10, 0, 11)


async def test_a_post_body_and_head_requests_are_sent_and_answered() -> None:
    async with ScriptedTarget() as target:
        body = RequestSpec("POST", (("Content-Type", "application/json"),), b'{"a":1}')
        _, posted = await run(plan_for(target.port, requests=50, request=body))
        _, head = await run(plan_for(target.port, requests=50, request=RequestSpec("HEAD")))
    assert (posted["requests"], posted["errors"]) == (50, 0)
    assert (head["requests"], head["errors"]) == (50, 0)


async def test_a_duration_run_emits_each_second_and_counts_nothing_after_its_end() -> None:
    async with ScriptedTarget() as target:
        seconds, summary = await run(plan_for(target.port, duration_s=1.5, connections=2))
    assert [second.second for second in seconds] == [0, 1]
    assert summary["requests"] == sum(second.requests for second in seconds) > 0
    assert summary["requests"] <= target.requests


async def test_the_warm_up_is_sent_but_not_counted() -> None:
    async with ScriptedTarget() as target:
        _, summary = await run(plan_for(target.port, requests=300, warmup_s=0.3))
    assert summary["requests"] == 300
    assert target.requests > 300


@pytest.mark.usefixtures("frozen_heap")
async def test_the_open_model_sends_at_the_rate_without_drift() -> None:
    async with ScriptedTarget() as target:
        _, summary = await run(plan_for(target.port, rate=400.0, duration_s=1.5))
    # 600 intended sends, the first at the start: the last leaves at 599/400 s.
    assert 594 <= target.requests <= 600  # none due at or after the end, however early a timer
    span_s = target.arrivals_s[-1] - target.arrivals_s[0]
    assert abs(span_s - (target.requests - 1) / 400) < 0.05
    assert summary["late_sends"] <= 30  # on time, bar a busy machine's hiccup


@pytest.mark.usefixtures("frozen_heap")
async def test_a_stall_shows_in_the_corrected_latency_and_hides_from_the_service_one() -> None:
    # One connection at 100 req/s; the 50th answer takes a second: the ~100 sends due
    # meanwhile leave late, each answered at once, so only their corrected latency sees it.
    async with ScriptedTarget(lambda n: Answer(delay_s=1.0 if n == 50 else 0)) as target:
        _, summary = await run(plan_for(target.port, rate=100.0, duration_s=3, connections=1))
    assert summary["latency_ms"]["p99"] < 50
    assert summary["latency_ms"]["max"] >= 1000
    assert summary["corrected_latency_ms"]["p99"] >= 900
    assert summary["corrected_latency_ms"]["p90"] >= 500  # a third of the sends waited
    assert 90 <= summary["late_sends"] <= 150  # ~100 behind the stall, a busy machine some more


async def test_a_rate_change_takes_effect_from_the_next_second() -> None:
    def speed_up(worker: LoadWorker) -> None:
        asyncio.get_running_loop().call_later(1.0, worker.set_rate, 400.0)

    async with ScriptedTarget() as target:
        seconds, _ = await run(plan_for(target.port, rate=100.0, duration_s=3), speed_up)
    rates = [second.requests for second in seconds]
    assert 90 <= rates[0] <= 110
    assert 360 <= rates[2] <= 440


async def test_connections_can_grow_and_shrink_while_running() -> None:
    def resize(worker: LoadWorker) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, worker.set_connections, 6)
        loop.call_later(1.0, worker.set_connections, 1)

    async with ScriptedTarget(lambda _n: Answer(delay_s=0.02)) as target:
        seconds, summary = await run(plan_for(target.port, connections=2, duration_s=1.5), resize)
    assert target.connections == 6
    assert summary["errors"] == 0
    # ~50 answers/s per connection: 2 then 6 connections in second 0, 1 in the last half.
    assert seconds[0].requests > 110
    assert seconds[1].requests < 60


async def test_a_pause_sends_nothing_and_the_duration_counts_running_time() -> None:
    def pause_then_resume(worker: LoadWorker) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, worker.pause)
        loop.call_later(0.8, worker.resume)

    async with ScriptedTarget() as target:
        started_s = perf_counter()
        await run(plan_for(target.port, rate=200.0, duration_s=1.0), pause_then_resume)
        ended_s = perf_counter()
    gaps = [b - a for a, b in zip(target.arrivals_s, target.arrivals_s[1:], strict=False)]
    assert max(gaps) >= 0.45
    assert ended_s - started_s >= 1.45


async def test_sends_the_run_could_not_make_are_counted_as_missed_never_dropped() -> None:
    # Two connections answered in 50 ms carry 40 req/s; 200 req/s are due for a second.
    workers: list[LoadWorker] = []

    async with ScriptedTarget(lambda _n: Answer(delay_s=0.05)) as target:
        plan = plan_for(target.port, rate=200.0, duration_s=1.0, connections=2)
        _, summary = await run(plan, workers.append)
    assert summary["late_sends"] > 0
    assert 195 <= workers[0].sent + summary["missed_sends"] <= 201  # each due: made or missed
    assert summary["corrected_percentiles"][-1]["value_ms"] > 500  # the queue, corrected


async def test_the_last_partial_second_gives_its_rate_not_its_count() -> None:
    async with ScriptedTarget() as target:
        seconds, summary = await run(plan_for(target.port, rate=200.0, duration_s=1.5))
    last = seconds[-1].row()
    assert last["second"] == 1
    assert seconds[-1].span_s == pytest.approx(0.5, abs=0.01)
    assert 180 <= last["rps"] <= 220  # ~100 requests in half a second
    assert summary["missed_sends"] == 0


async def test_a_stop_counts_the_answers_in_flight_so_the_target_saw_what_is_recorded() -> None:
    """A stop used to close the connections with their requests in flight: the target had
    answered them but the run did not count them, so a run stopped and resumed elsewhere
    sent more than its requests. Four connections, each answer 100 ms late."""

    def stop_soon(worker: LoadWorker) -> None:
        asyncio.get_running_loop().call_later(0.25, worker.stop)

    async with ScriptedTarget(lambda _n: Answer(delay_s=0.1)) as target:
        plan = plan_for(target.port, requests=1000, connections=4)
        _, summary = await run(plan, stop_soon)
    # Stopped mid-round (a round takes 100 ms): the last round's four were in flight.
    assert summary["requests"] == target.requests >= 8
    assert target.requests % 4 == 0
    assert summary["errors"] == 0


async def test_a_stop_gives_up_on_answers_that_do_not_come_within_its_drain() -> None:
    """And says how many it cut off: a run resumed after it would send them again."""
    workers: list[LoadWorker] = []

    def stop_soon(worker: LoadWorker) -> None:
        workers.append(worker)
        asyncio.get_running_loop().call_later(0.1, worker.stop)

    async with ScriptedTarget(lambda _n: Answer(delay_s=30.0)) as target:
        started_s = perf_counter()
        _, summary = await run(plan_for(target.port, requests=10, connections=2), stop_soon)
        stopped_after_s = perf_counter() - started_s
    assert summary["requests"] == 0  # in flight at the end of the drain: not counted (as wrk)
    assert target.requests == workers[0].cut_off == 2
    assert STOP_DRAIN_S <= stopped_after_s < STOP_DRAIN_S + 1.0


async def test_a_stop_drain_counts_the_timeouts_that_come_meanwhile() -> None:
    """Found in review: the timeout sweep ended with the stop, so a request hung past its
    timeout was cut off uncounted instead of counted as the timeout it is."""
    workers: list[LoadWorker] = []

    def stop_soon(worker: LoadWorker) -> None:
        workers.append(worker)
        asyncio.get_running_loop().call_later(0.1, worker.stop)

    async with ScriptedTarget(lambda _n: Answer(delay_s=30.0)) as target:
        plan = plan_for(target.port, requests=10, connections=2, timeout_s=0.5)
        _, summary = await run(plan, stop_soon)
    assert summary["requests"] == summary["errors"] == target.requests == 2
    assert workers[0].cut_off == 0
