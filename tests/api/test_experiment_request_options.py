"""POST /api/v1/experiments with a method, headers, a body and checks, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness import bound_port, wait_state

ECHO_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
JSON_POST = {
    "path": "/sum",
    "method": "POST",
    "headers": {"Content-Type": "application/json", "X-Run": "r1"},
    "body": '{"a": 1, "b": 2}',
}


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A server that answers each request with the request's own bytes (head and body)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        request = head + await reader.readexactly(length)
        writer.write(ECHO_HEAD % len(request) + request)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield bound_port(server)
    finally:
        server.close()
        await server.wait_closed()


async def run(api: httpx.AsyncClient, port: int, **fields: Any) -> dict[str, Any]:
    """Create and start an experiment, wait for it to complete, and give back its results."""
    spec = {"host": "127.0.0.1", "port": port, "interval_s": 0.01, "count": 2, **fields}
    created = await api.post("/api/v1/experiments", params={"start": "true"}, json=spec)
    assert created.status_code == 201, created.text
    experiment_id = created.json()["id"]
    await wait_state(api, experiment_id, "completed")
    results = await api.get(f"/api/v1/experiments/{experiment_id}/results")
    stats = await api.get(f"/api/v1/experiments/{experiment_id}/stats")
    return {"id": experiment_id, "results": results.json()["data"], "stats": stats.json()}


async def test_headers_and_body_reach_the_target_as_given(
    api: httpx.AsyncClient, echo_port: int
) -> None:
    run_of = await run(
        api, echo_port, **JSON_POST, expect_body_contains="X-Run: r1\r\nContent-Length: 16"
    )
    assert [r["error"] for r in run_of["results"]] == [None, None]
    await run(api, echo_port, **JSON_POST, expect_body_contains='\r\n\r\n{"a": 1, "b": 2}')
    missing = await run(api, echo_port, **JSON_POST, expect_body_contains='"c"')
    assert missing["stats"]["errors_by_kind"]["assertion"] == 2


async def test_a_json_post_with_passing_checks_has_no_errors(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    checks = {"expect_status": [200], "expect_body_contains": "Sum: 3.0"}
    run_of = await run(api, targets_port, **JSON_POST, **checks, expect_max_latency_ms=5000)
    assert [(r["status_code"], r["error"]) for r in run_of["results"]] == [(200, None)] * 2
    assert (run_of["stats"]["count"], run_of["stats"]["errors"]) == (2, 0)
    settings = (await api.get(f"/api/v1/experiments/{run_of['id']}")).json()["settings"]
    assert {key: settings[key] for key in JSON_POST} == JSON_POST
    assert settings["expect_status"] == "200"


@pytest.mark.parametrize(
    ("fields", "status_code", "error", "kind"),
    [
        (
            {"path": "/status/503", "expect_status": "2xx"},
            503,
            "expect_status: got 503, not 2xx",
            "bad_status",
        ),
        (
            {"path": "/sum", "method": "POST", "body": "{}", "expect_status": "2xx"},
            400,
            "expect_status: got 400",
            "bad_status",
        ),
        (
            {"path": "/status/200", "expect_body_contains": "pong"},
            200,
            "expect_body_contains: 'pong' not in the body",
            "assertion",
        ),
        (
            {"path": "/delay?ms=20", "expect_max_latency_ms": 2},
            200,
            "expect_max_latency_ms: took ",
            "assertion",
        ),
    ],
    ids=["status", "post-without-content-type", "body", "latency"],
)
async def test_a_failed_check_is_named_in_results_and_counted_in_stats(
    api: httpx.AsyncClient,
    targets_port: int,
    fields: dict[str, Any],
    status_code: int,
    error: str,
    kind: str,
) -> None:
    run_of = await run(api, targets_port, **fields)
    for result in run_of["results"]:
        assert (result["status_code"], result["error"][: len(error)]) == (status_code, error)
        assert result["latency_ms"] > 0  # a failed check keeps what was measured
    stats = run_of["stats"]
    assert (stats["errors"], stats["errors_by_kind"][kind]) == (2, 2)
    csv = await api.get(f"/api/v1/experiments/{run_of['id']}/results.csv")
    assert csv.text.count(error) == 2


async def test_without_checks_an_error_status_is_still_a_success(
    api: httpx.AsyncClient, targets_port: int
) -> None:
    run_of = await run(api, targets_port, path="/status/503")
    assert [(r["status_code"], r["error"]) for r in run_of["results"]] == [(503, None)] * 2
    assert run_of["stats"]["errors"] == 0


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"method": "post"}, "method", "upper-case HTTP token"),
        ({"headers": {"Connection": "close"}}, "headers", "set by LatLab"),
        ({"headers": {"X": ["a"]}}, "headers", "valid string"),
        ({"headers": "X: 1"}, "headers", "valid dictionary"),
        ({"body": '{"a": 1}'}, "body", "a GET request has no body"),
        ({"method": "POST", "body": 5}, "body", "valid string"),
        ({"expect_status": "2xx,9"}, "expect_status", "bad expected status '9'"),
        ({"expect_status": {"code": 200}}, "expect_status", "valid string"),
        ({"expect_body_contains": ""}, "expect_body_contains", "at least 1 character"),
        ({"method": "HEAD", "expect_body_contains": "ok"}, "expect_body_contains", "no body"),
        ({"expect_max_latency_ms": -1}, "expect_max_latency_ms", "greater than 0"),
        ({"expect_max_latency_ms": "fast"}, "expect_max_latency_ms", "valid number"),
    ],
)
async def test_bad_options_are_a_422_naming_the_field_and_create_nothing(
    api: httpx.AsyncClient, fields: dict[str, Any], field: str, says: str
) -> None:
    spec = {"host": "127.0.0.1", "port": 8008, **fields}
    response = await api.post("/api/v1/experiments", json=spec)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail[0]["loc"][:2] == ["body", field]
    assert says in detail[0]["msg"]
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0


async def test_a_bad_option_in_a_list_names_its_item_and_creates_nothing(
    api: httpx.AsyncClient,
) -> None:
    good = {"host": "127.0.0.1", "port": 8008, **JSON_POST}
    bad = {**good, "headers": {"Content-Length": "3"}}
    response = await api.post("/api/v1/experiments", json=[good, good, bad])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", 2, "headers"]
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0


async def test_a_list_creates_experiments_with_their_own_options(api: httpx.AsyncClient) -> None:
    specs = [
        {"host": "127.0.0.1", "port": 8008},
        {"host": "127.0.0.1", "port": 8008, "method": "DELETE", "expect_status": "204"},
    ]
    created = await api.post("/api/v1/experiments", json=specs)
    assert created.status_code == 201
    settings = [item["settings"] for item in created.json()["data"]]
    assert [(s["method"], s["expect_status"]) for s in settings] == [
        ("GET", None),
        ("DELETE", "204"),
    ]


async def test_the_seed_routes_keep_a_bare_get_without_checks(api: httpx.AsyncClient) -> None:
    # Query parameters the seed routes never had are ignored, as they always were.
    params = {"host": "127.0.0.1", "port": "8008", "interval": "1", "count": "3", "method": "PUT"}
    experiment_id = (await api.post("/create_experiment", params=params)).json()["experiment_id"]
    settings = (await api.get(f"/api/v1/experiments/{experiment_id}")).json()["settings"]
    options = ["method", "headers", "body", "expect_status", "expect_body_contains"]
    assert [settings[key] for key in options] == ["GET", {}, "", None, None]
    assert settings["expect_max_latency_ms"] is None
