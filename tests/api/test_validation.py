"""Bad input gets a clear 4xx and changes nothing; no input gives a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

GOOD = {"host": "127.0.0.1", "port": "8008", "interval": "1", "count": "10"}


def messages(response: httpx.Response) -> str:
    detail = response.json()["detail"]
    return " ".join(str(e["msg"]) for e in detail) if isinstance(detail, list) else str(detail)


async def assert_nothing_created(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("host", "", "at least 1 character"),
        ("host", "http://example.com", "not a valid hostname"),
        ("host", "exa mple.com", "not a valid hostname"),
        ("host", "-bad-.com", "not a valid hostname"),
        ("host", "a" * 64 + ".com", "not a valid hostname"),
        ("host", "127.0.0.1:80", "not a valid hostname"),
        ("port", "0", "greater than or equal to 1"),
        ("port", "65536", "less than or equal to 65535"),
        ("port", "http", "valid integer"),
        ("interval", "0", "greater than 0"),
        ("interval", "-1", "greater than 0"),
        ("interval", "nan", "greater than 0"),
        ("interval", "inf", "finite number"),
        ("interval", "86401", "less than or equal to 86400"),
        ("interval", "soon", "valid number"),
        ("count", "0", "greater than or equal to 1"),
        ("count", "-3", "greater than or equal to 1"),
        ("count", "1.5", "valid integer"),
        ("count", "10000001", "less than or equal to 10000000"),
    ],
)
async def test_seed_create_rejects_bad_settings(
    api: httpx.AsyncClient, field: str, value: str, says: str
) -> None:
    response = await api.post("/create_experiment", params={**GOOD, field: value})
    assert response.status_code == 422
    assert says in messages(response)
    assert field in str(response.json()["detail"][0]["loc"])
    await assert_nothing_created(api)


@pytest.mark.parametrize("missing", ["host", "port", "interval", "count"])
async def test_seed_create_requires_every_setting(api: httpx.AsyncClient, missing: str) -> None:
    params = {k: v for k, v in GOOD.items() if k != missing}
    response = await api.post("/create_experiment", params=params)
    assert (response.status_code, "Field required") == (422, messages(response))
    await assert_nothing_created(api)


@pytest.mark.parametrize(
    "payload",
    [
        {"host": "127.0.0.1", "port": 80, "count": 0},
        {"host": "127.0.0.1", "port": 80, "interval_s": -1},
        {"host": "127.0.0.1", "port": 80, "path": "no-slash"},
        {"host": "127.0.0.1", "port": 80, "path": "/a b"},
        {"host": "127.0.0.1", "port": 80, "scheme": "ftp"},
        {"host": "127.0.0.1", "port": 80, "timeout_s": 0},
        {"host": "127.0.0.1", "port": 80, "surprise": 1},
        {"host": "::1::2", "port": 80},
        {"port": 80},
        [1, 2],
        "text",
    ],
)
async def test_v1_create_rejects_bad_bodies(api: httpx.AsyncClient, payload: Any) -> None:
    response = await api.post("/api/v1/experiments", json=payload)
    assert response.status_code == 422
    await assert_nothing_created(api)


async def test_v1_create_rejects_invalid_json(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/experiments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in messages(response)
    await assert_nothing_created(api)


async def test_v1_create_rejects_overflowing_numbers(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/experiments",
        content=b'{"host": "127.0.0.1", "port": 80, "interval_s": 1e999}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert "finite number" in messages(response)
    await assert_nothing_created(api)


async def test_ipv6_hosts_are_accepted_with_or_without_brackets(api: httpx.AsyncClient) -> None:
    for host in ["::1", "[::1]"]:
        response = await api.post("/api/v1/experiments", json={"host": host, "port": 80})
        assert response.json()["settings"]["host"] == "::1"


@pytest.mark.parametrize(
    ("experiment_id", "status"),
    [("abc", 422), ("1.5", 422), ("0", 422), ("-1", 422), (str(2**63), 422), ("424242", 404)],
)
@pytest.mark.parametrize("prefix", ["", "/api"])
async def test_seed_ids_malformed_422_unknown_404(
    api: httpx.AsyncClient, experiment_id: str, status: int, prefix: str
) -> None:
    result = await api.get(f"{prefix}/result_experiment", params={"experiment_id": experiment_id})
    manage = await api.post(
        f"{prefix}/manage_experiment", params={"experiment_id": experiment_id, "state": "start"}
    )
    assert (result.status_code, manage.status_code) == (status, status)
    if status == 404:
        assert result.json() == {"detail": "experiment 424242 not found"}


@pytest.mark.parametrize("experiment_id", ["abc", "0", str(2**63), "424242"])
@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/start"), ("GET", "/results"), ("GET", "/stats")],
)
async def test_v1_ids_never_500(
    api: httpx.AsyncClient, experiment_id: str, method: str, suffix: str
) -> None:
    response = await api.request(method, f"/api/v1/experiments/{experiment_id}{suffix}")
    assert response.status_code == (404 if experiment_id == "424242" else 422)


async def test_manage_rejects_unknown_state(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/manage_experiment", params={"experiment_id": "1", "state": "explode"}
    )
    assert response.status_code == 422
    assert "'start', 'pause' or 'stop'" in messages(response)


@pytest.mark.parametrize(
    "params", [{"state": "dancing"}, {"offset": "-1"}, {"limit": "0"}, {"limit": "1001"}]
)
async def test_v1_list_rejects_bad_paging_and_filters(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert (await api.get("/api/v1/experiments", params=params)).status_code == 422


async def test_v1_unknown_action_is_422(api: httpx.AsyncClient) -> None:
    assert (await api.post("/api/v1/experiments/1/explode")).status_code == 422


@pytest.mark.parametrize(
    ("path", "field"), [("/api/v1/experiments", "host"), ("/api/v1/bots", "start_number")]
)
async def test_a_deeply_nested_value_is_a_422_not_a_500(
    api: httpx.AsyncClient, path: str, field: str
) -> None:
    nested = "[" * 800 + "]" * 800
    body = f'{{"{field}": {nested}, "port": 1}}'.encode()
    response = await api.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0
