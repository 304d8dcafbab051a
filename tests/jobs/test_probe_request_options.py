"""Experiments with request options and checks: the spec, and what a run stores and counts."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conftest import STORE_KINDS
from harness import run_experiment_to_end
from latlab.jobs.kinds.probe import ProbeRunner
from latlab.jobs.kinds.probe_spec import ProbeSpec
from latlab.jobs.kinds.probe_stats import experiment_stats
from latlab.measure.request import RequestSpec
from latlab.measure.stats import LatencyHistogram
from latlab.storage import Store

BASE: dict[str, Any] = {"host": "127.0.0.1", "port": 8008}
# A spec as stored before request options existed.
OLD_SPEC = {**BASE, "interval_s": 1.0, "count": 3, "path": "/", "scheme": "http"}


def test_a_spec_without_options_probes_a_bare_get_without_checks() -> None:
    target = ProbeSpec.model_validate(OLD_SPEC).target()
    assert target.request == RequestSpec()
    assert (target.checks.status, target.checks.body_contains) == (None, b"")
    assert target.checks.max_latency_ms is None


def test_options_become_the_request_and_the_checks() -> None:
    fields = {
        "method": "PUT",
        "headers": {"Content-Type": "application/json", "X-Run": "7"},
        "body": '{"name": "caf\u00e9"}',
        "expect_status": "2xx,304",
        "expect_body_contains": "caf\u00e9",
        "expect_max_latency_ms": 250,
    }
    target = ProbeSpec.model_validate({**BASE, **fields}).target()
    assert target.request == RequestSpec(
        "PUT",
        (("Content-Type", "application/json"), ("X-Run", "7")),
        '{"name": "caf\u00e9"}'.encode(),
    )
    assert (304 in target.checks.status, 305 in target.checks.status) == (True, False)  # type: ignore[operator]
    assert target.checks.body_contains == "caf\u00e9".encode()
    assert target.checks.max_latency_ms == 250.0


@pytest.mark.parametrize(
    ("given", "stored"),
    [("200, 201", "200,201"), ("2XX", "2xx"), ([200, "3xx"], "200,3xx"), (204, "204")],
)
def test_expect_status_is_stored_as_normalised_text(given: Any, stored: str) -> None:
    assert ProbeSpec.model_validate({**BASE, "expect_status": given}).expect_status == stored


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"method": "post"}, "method", "upper-case HTTP token"),
        ({"method": "GE T"}, "method", "upper-case HTTP token"),
        ({"headers": {"Content-Length": "9"}}, "headers", "set by LatLab"),
        ({"headers": {"Bad Name": "v"}}, "headers", "bad header name"),
        ({"headers": {"X": "a\r\nY: b"}}, "headers", "line break"),
        ({"headers": {f"X-{n}": "v" for n in range(65)}}, "headers", "at most 64"),
        ({"body": "{}"}, "body", "a GET request has no body"),
        ({"method": "HEAD", "body": "x"}, "body", "a HEAD request has no body"),
        ({"method": "POST", "body": "\ud800"}, "body", "valid Unicode"),
        ({"expect_status": "2xy"}, "expect_status", "bad expected status"),
        ({"expect_status": "700"}, "expect_status", "bad expected status"),
        ({"expect_status": []}, "expect_status", "or a list"),
        ({"expect_status": [True]}, "expect_status", "or a list"),
        ({"expect_body_contains": ""}, "expect_body_contains", "at least 1"),
        ({"expect_body_contains": "\udc00"}, "expect_body_contains", "unicode"),
        ({"method": "HEAD", "expect_body_contains": "x"}, "expect_body_contains", "no body"),
        ({"expect_max_latency_ms": 0}, "expect_max_latency_ms", "greater than 0"),
        ({"expect_max_latency_ms": float("inf")}, "expect_max_latency_ms", "finite"),
    ],
)
def test_bad_options_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        ProbeSpec.model_validate({**BASE, **fields})
    errors = raised.value.errors()
    assert [error["loc"][0] for error in errors] == [field]
    assert says.lower() in errors[0]["msg"].lower()


async def run_to_end(store: Store, spec: dict[str, Any]) -> int:
    return await run_experiment_to_end(store, ProbeRunner(3), spec)


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_failed_checks_are_stored_and_counted_on_every_store(
    store: Store, targets_port: int
) -> None:
    spec = {**BASE, "port": targets_port, "path": "/status/503", "interval_s": 0.005, "count": 5}
    job_id = await run_to_end(store, {**spec, "expect_status": "2xx"})
    results = await store.probe_results.list(job_id)
    assert {(r.status_code, r.error) for r in results} == {(503, "expect_status: got 503, not 2xx")}
    assert all(r.latency_ms > 0 and r.ttfb_ms is not None for r in results)
    stats = (await experiment_stats(store, job_id)).stats()
    assert (stats.count, stats.errors, stats.errors_by_kind["bad_status"]) == (5, 5, 5)
    recount = LatencyHistogram()
    for result in results:
        recount.record(result.latency_ms, result.error)
    assert recount.stats() == stats


async def test_a_post_with_passing_checks_counts_no_errors(store: Store, targets_port: int) -> None:
    spec = {
        **BASE,
        "port": targets_port,
        "path": "/sum",
        "method": "POST",
        "headers": {"Content-Type": "application/json"},
        "body": '{"a": 1, "b": 2}',
        "expect_status": "200",
        "expect_body_contains": "Sum: 3.0",
        "expect_max_latency_ms": 5000,
        "interval_s": 0.005,
        "count": 4,
    }
    job_id = await run_to_end(store, spec)
    results = await store.probe_results.list(job_id)
    assert [(r.status_code, r.error) for r in results] == [(200, None)] * 4
    stats = (await experiment_stats(store, job_id)).stats()
    assert (stats.count, stats.errors) == (4, 0)


async def test_body_and_latency_checks_count_as_assertions(store: Store, targets_port: int) -> None:
    spec = {**BASE, "port": targets_port, "interval_s": 0.005, "count": 2}
    body_job = await run_to_end(store, {**spec, "expect_body_contains": "no such text"})
    slow_job = await run_to_end(store, {**spec, "path": "/delay?ms=15", "expect_max_latency_ms": 1})
    for job_id, text in [(body_job, "expect_body_contains: "), (slow_job, "expect_max_latency_ms")]:
        results = await store.probe_results.list(job_id)
        assert all((r.error or "").startswith(text) and r.status_code == 200 for r in results)
        stats = (await experiment_stats(store, job_id)).stats()
        assert (stats.errors, stats.errors_by_kind["assertion"]) == (2, 2)
