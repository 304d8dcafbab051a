"""The target policy and the spec limits: refused at creation when the host is a literal,
a failed result (never a connection) when only resolution shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from harness import CountingTarget, run_api, wait_state
from latlab.jobs.kinds.probe_spec import ProbeSpec, probe_limits
from latlab.measure.connections import SocketConnection, TlsConnection
from latlab.settings import Settings

API_PORT = 8000  # the control API's port as the settings give it
REFUSED_FORMS = {
    "169.254.169.254": "target not allowed: 169.254.169.254 (link-local address)",
    "::ffff:169.254.169.254": "(link-local address)",
    "fe80::1": "target not allowed: fe80::1 (link-local address)",
    "0.0.0.0": "target not allowed: 0.0.0.0 (unspecified address)",
    "::": "target not allowed: :: (unspecified address)",
    "224.0.0.1": "target not allowed: 224.0.0.1 (multicast address)",
    "127.1": "write it as 127.0.0.1",
    "2130706433": "write it as 127.0.0.1",
    "0x7f000001": "write it as 127.0.0.1",
    "0177.0.0.1": "write it as 127.0.0.1",
    "0x7f.1": "write it as 127.0.0.1",
    "1.2.3.4.5": "not a valid IP address",
    "999999999999": "not a valid IP address",
}
# The control API's own port, on loopback in every spelling.
API_FORMS = {
    host: f"(port {API_PORT} is LatLab's own control API)"
    for host in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "[::1]")
}


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Addresses the probes try to connect to; none gets past this seam (no packet sent)."""
    attempts: list[str] = []

    async def record(_family: int, address: str, *_args: object) -> Any:
        attempts.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(SocketConnection, "open", record)
    monkeypatch.setattr(TlsConnection, "open", record)
    return attempts


def settings(**fields: Any) -> Settings:
    return Settings(**{"storage_url": "memory://", "port": API_PORT, "freeze_gc": False, **fields})


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with run_api(settings()) as client:
        yield client


async def seed_create(api: httpx.AsyncClient, host: str, port: int) -> httpx.Response:
    params: dict[str, str | int] = {"host": host, "port": port, "interval": 1, "count": 10}
    return await api.post("/create_experiment", params=params)


async def v1_create(api: httpx.AsyncClient, host: str, port: int) -> httpx.Response:
    return await api.post("/api/v1/experiments", json={"host": host, "port": port})


async def check_latency(api: httpx.AsyncClient, host: str, port: int) -> httpx.Response:
    return await api.get("/test-latency", params={"host": host, "port": port})


ROUTES = {"create_experiment": seed_create, "v1": v1_create, "test-latency": check_latency}


def host_error(response: httpx.Response) -> str:
    """The message of the 422 on the ``host`` field, or what came back instead."""
    if response.status_code != 422:
        return f"{response.status_code} {response.text}"
    errors = response.json()["detail"]
    return " ".join(e["msg"] for e in errors if e["loc"][-1] == "host")


@pytest.mark.parametrize("route", ROUTES)
async def test_refused_host_literals_are_422_naming_the_host(
    api: httpx.AsyncClient, connects: list[str], route: str
) -> None:
    forms = {h: (h, 80, says) for h, says in REFUSED_FORMS.items()}
    forms |= {h: (h, API_PORT, says) for h, says in API_FORMS.items()}
    answers = {
        form: host_error(await ROUTES[route](api, h, p)) for form, (h, p, _) in forms.items()
    }
    missing = {
        form: answers[form] for form, (_, _, says) in forms.items() if says not in answers[form]
    }
    assert missing == {}
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0
    assert connects == []


async def test_ipv4_mapped_loopback_is_judged_as_loopback(api: httpx.AsyncClient) -> None:
    async with CountingTarget() as target:
        created = await v1_create(api, "::ffff:127.0.0.1", target.port)
        assert created.status_code == 201, created.text
        checked = (await check_latency(api, "::ffff:127.0.0.1", target.port)).json()
    assert (checked["status_code"], checked["error"], target.requests) == (200, None, 1)


async def test_the_api_port_is_refused_as_the_settings_give_it() -> None:
    async with CountingTarget() as api_stand_in, run_api(settings(port=api_stand_in.port)) as api:
        response = await check_latency(api, "127.0.0.1", api_stand_in.port)
    assert "own control API" in host_error(response)
    assert api_stand_in.requests == 0


async def test_deny_and_allow_lists_apply_at_creation() -> None:
    denying = settings(targets_deny=["10.0.0.0/8"], targets_allow=["10.0.0.0/8", "127.0.0.0/8"])
    async with run_api(denying) as api:
        denied = await v1_create(api, "10.1.2.3", 80)
        outside = await seed_create(api, "192.168.1.1", 80)
        inside = await v1_create(api, "127.0.0.1", 80)
    assert "(denied by LATLAB_TARGETS_DENY 10.0.0.0/8)" in host_error(denied)
    assert "(not in LATLAB_TARGETS_ALLOW)" in host_error(outside)
    assert inside.status_code == 201


async def test_a_name_resolving_to_a_denied_address_gives_a_failed_result() -> None:
    deny_loopback = settings(targets_deny=["127.0.0.0/8", "::1/128"])
    async with CountingTarget() as target, run_api(deny_loopback) as api:
        checked = (await check_latency(api, "localhost", target.port)).json()
        body = {"host": "localhost", "port": target.port, "interval_s": 0.01, "count": 2}
        created = (await api.post("/api/v1/experiments?start=true", json=body)).json()
        await wait_state(api, created["id"], "completed")
        results = (await api.get(f"/api/v1/experiments/{created['id']}/results")).json()
    refused = "target not allowed: 127.0.0.1 (denied by LATLAB_TARGETS_DENY 127.0.0.0/8)"
    assert (checked["status_code"], checked["error"]) == (0, refused)
    assert [r["error"] for r in results["data"]] == [refused, refused]
    assert target.requests == 0


@pytest.mark.parametrize(
    ("seed_value", "v1_field", "v1_value", "limit"),
    [
        ("interval", "interval_s", 0.0005, {"min_interval_s": 0.001}),
        ("interval", "interval_s", 1e-300, {}),
        ("count", "count", 101, {"max_results": 100}),
    ],
)
async def test_limits_out_of_range_are_422_naming_the_field(
    seed_value: str, v1_field: str, v1_value: float, limit: dict[str, Any]
) -> None:
    async with run_api(settings(**limit)) as api:
        params: dict[str, str | float] = {
            "host": "127.0.0.1",
            "port": 80,
            "interval": 1,
            "count": 10,
        }
        seed = await api.post("/create_experiment", params={**params, seed_value: v1_value})
        v1 = await api.post(
            "/api/v1/experiments", json={"host": "::1", "port": 80, v1_field: v1_value}
        )
        listed = (await api.get("/api/v1/experiments")).json()["count"]
    assert (seed.status_code, v1.status_code, listed) == (422, 422, 0)
    assert seed.json()["detail"][0]["loc"] == ["query", seed_value]
    assert v1.json()["detail"][0]["loc"] == ["body", v1_field]


async def test_limits_admit_their_bounds() -> None:
    async with run_api(settings(min_interval_s=0.01, max_results=100)) as api:
        body = {"host": "127.0.0.1", "port": 80, "interval_s": 0.01, "count": 100}
        created = await api.post("/api/v1/experiments", json=body)
    assert created.status_code == 201, created.text


def test_stored_specs_load_without_the_limits() -> None:
    stored = {"host": "169.254.169.254", "port": 80, "interval_s": 1e-6, "count": 10_000_000}
    assert ProbeSpec.model_validate(stored).host == "169.254.169.254"
    with pytest.raises(ValidationError, match=r"interval must be at least 0\.001 s"):
        ProbeSpec.validate_new(stored, probe_limits(settings()))
    with pytest.raises(ValidationError, match=r"target not allowed: 169\.254\.169\.254"):
        ProbeSpec.validate_new({**stored, "interval_s": 1}, probe_limits(settings()))
