"""Who may drive the API: the token (header or login cookie), the Host check, the Origin check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from harness import run_api
from latlab.serving.hosts import same_origin, split_host
from latlab.serving.redirects import safe_next
from latlab.settings import Settings

TOKEN = "s3cret-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = ["/healthz", "/docs", "/docs/oauth2-redirect", "/apidocs/", "/apidocs", "/redoc"]


def settings(**overrides: Any) -> Settings:
    return Settings(storage_url="memory://", freeze_gc=False, **overrides)


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    """The API with a token; the client sends none unless told."""
    async with run_api(settings(api_token=SecretStr(TOKEN))) as client:
        yield client


@pytest.fixture
async def open_api() -> AsyncIterator[httpx.AsyncClient]:
    """The API without a token (the default: loopback clients only)."""
    async with run_api(settings()) as client:
        yield client


async def test_routes_without_the_token_are_401(guarded: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/active_bots"), ("POST", "/start"), ("GET", "/metrics")]:
        response = await guarded.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["detail"]
    assert (await guarded.get("/active_bots", headers=BEARER)).json() == {"active_bots": []}


async def test_a_wrong_token_is_401_wherever_it_differs(guarded: httpx.AsyncClient) -> None:
    first_byte, last_byte = "X" + TOKEN[1:], TOKEN[:-1] + "X"
    for wrong in [first_byte, last_byte, TOKEN[:-1], TOKEN + "9", "x", "Bearer", TOKEN.upper()]:
        response = await guarded.post("/start", headers={"Authorization": f"Bearer {wrong}"})
        assert response.status_code == 401, wrong
    assert (await guarded.get("/active_bots", headers=BEARER)).json() == {"active_bots": []}


async def test_bearer_token_drives_the_api(guarded: httpx.AsyncClient) -> None:
    created = await guarded.post("/start", headers=BEARER)
    assert created.status_code == 201
    bot_id = created.json()["bot_id"]
    assert (await guarded.get(f"/stop/{bot_id}", headers=BEARER)).status_code == 204


async def test_health_and_docs_need_no_token(guarded: httpx.AsyncClient) -> None:
    for path in [*PUBLIC, "/openapi.json"]:
        assert (await guarded.get(path)).status_code == 200, path


async def test_login_cookie_stands_for_the_token(guarded: httpx.AsyncClient) -> None:
    response = await guarded.post("/ui/login", data={"token": TOKEN})
    assert (response.status_code, response.headers["location"]) == (303, "/ui/")
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert TOKEN not in cookie
    assert (await guarded.get("/active_bots")).status_code == 200  # the client sends the cookie

    logout = await guarded.post("/ui/logout")
    assert logout.status_code == 303
    assert (await guarded.get("/active_bots")).status_code == 401


async def test_login_takes_json_and_goes_only_to_same_site_next(
    guarded: httpx.AsyncClient,
) -> None:
    response = await guarded.post("/ui/login", json={"token": TOKEN, "next": "/ui/bots"})
    assert (response.status_code, response.headers["location"]) == (303, "/ui/bots")
    for unsafe in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "ui"]:
        assert safe_next(unsafe) == "/ui/"
    assert safe_next("/ui/load-runs/4") == "/ui/load-runs/4"


async def test_login_never_sends_a_browser_to_a_get_that_acts(guarded: httpx.AsyncClient) -> None:
    """Found in review: ``next=/stop/3`` stopped bot 3 for whoever logged in from that link
    (the redirect is a same-origin GET, which the Origin check lets through)."""
    for acting in [
        "/stop/3",
        "/api/stop/3",
        "/test-latency?host=127.0.0.1&port=9",
        "/ui/../stop/3",
        "/ui/%2e%2e/stop/3",  # found in review: a browser decodes %2e%2e to ..
        "/ui/%2E%2e/stop/3",
        "/ui/.%2e/stop/3",
        "/ui/%2e./stop/3",
        "/ui/x/%2e%2e/%2e%2e/stop/3",
        "/ui/%5c..%5cstop/3",
    ]:
        response = await guarded.post("/ui/login", json={"token": TOKEN, "next": acting})
        assert (response.status_code, response.headers["location"]) == (303, "/ui/"), acting


async def test_login_with_a_wrong_token_is_401_and_sets_no_cookie(
    guarded: httpx.AsyncClient,
) -> None:
    response = await guarded.post("/ui/login", data={"token": TOKEN + "x"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    forged = {"Cookie": f"latlab_session={TOKEN}"}
    assert (await guarded.get("/active_bots", headers=forged)).status_code == 401
    form = "application/x-www-form-urlencoded"
    for body, kind in [
        (b"\xff{", "application/json"),
        (b"[1]", "application/json"),
        (b"a&" * 20, form),
    ]:
        malformed = await guarded.post("/ui/login", content=body, headers={"Content-Type": kind})
        assert malformed.status_code == 401, body


async def test_login_without_a_configured_token_is_404(open_api: httpx.AsyncClient) -> None:
    response = await open_api.post("/ui/login", data={"token": "anything"})
    assert response.status_code == 404
    assert "no API token" in response.json()["detail"]


async def test_an_empty_token_is_no_token() -> None:
    """Else the cookie, an HMAC keyed with "", would be anyone's to compute."""
    async with run_api(settings(api_token=SecretStr(""))) as client:
        assert (await client.post("/ui/login", data={"token": ""})).status_code == 404
        refused = await client.get("/active_bots", headers={"Host": "evil.example"})
        assert refused.status_code == 400  # no token: the Host check applies
        assert (await client.get("/active_bots")).status_code == 200


async def test_a_foreign_host_is_400_without_a_token(open_api: httpx.AsyncClient) -> None:
    for host in ["evil.example", "evil.example:80", "10.0.0.1", "[::2]:80", "localhost.evil"]:
        response = await open_api.post("/start", headers={"Host": host})
        assert (response.status_code, response.json()) == (400, {"detail": "host not allowed"})
    assert (await open_api.get("/active_bots")).json() == {"active_bots": []}


async def test_loopback_hosts_are_served(open_api: httpx.AsyncClient) -> None:
    for host in ["localhost", "localhost:8000", "api.localhost:1", "127.8.9.1:80", "[::1]"]:
        response = await open_api.get("/active_bots", headers={"Host": host})
        assert response.status_code == 200, host


async def raw_answer(api: httpx.AsyncClient, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(api.base_url.host, api.base_url.port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


async def test_a_request_without_host_is_400(open_api: httpx.AsyncClient) -> None:
    answer = await raw_answer(open_api, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b'{"detail":"host not allowed"}')


async def test_the_first_of_two_hosts_is_judged(open_api: httpx.AsyncClient) -> None:
    two_hosts = b"GET /healthz HTTP/1.0\r\nHost: evil.example\r\nHost: 127.0.0.1\r\n\r\n"
    assert (await raw_answer(open_api, two_hosts)).startswith(b"HTTP/1.1 400")


async def test_allowed_hosts_are_served_and_checked_even_with_a_token() -> None:
    configured = settings(api_token=SecretStr(TOKEN), allowed_hosts="latlab.example.com")
    async with run_api(configured) as client:
        allowed = {**BEARER, "Host": "LatLab.example.com:8443"}
        assert (await client.get("/active_bots", headers=allowed)).status_code == 200
        foreign = {**BEARER, "Host": "evil.example"}
        assert (await client.get("/active_bots", headers=foreign)).status_code == 400


async def test_with_a_token_any_host_is_served(guarded: httpx.AsyncClient) -> None:
    headers = {**BEARER, "Host": "latlab.example.com"}
    assert (await guarded.get("/active_bots", headers=headers)).status_code == 200


async def test_a_cross_site_post_is_403_and_creates_nothing(open_api: httpx.AsyncClient) -> None:
    for headers in [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port of this machine is another origin
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ]:
        response = await open_api.post("/start", headers=headers)
        assert response.status_code == 403, headers
        assert "cross-site" in response.json()["detail"]
    assert (await open_api.get("/active_bots")).json() == {"active_bots": []}


async def test_a_cross_site_get_stop_is_403_and_the_bot_runs_on(
    open_api: httpx.AsyncClient,
) -> None:
    bot_id = (await open_api.post("/start")).json()["bot_id"]
    refused = await open_api.get(f"/stop/{bot_id}", headers={"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    assert (await open_api.get("/active_bots")).json() == {"active_bots": [bot_id]}

    own = f"{open_api.base_url.scheme}://{open_api.base_url.netloc.decode()}"
    stopped = await open_api.get(f"/stop/{bot_id}", headers={"Origin": own})
    assert stopped.status_code == 204


async def test_a_cross_site_test_latency_is_403(
    open_api: httpx.AsyncClient, unused_port: int
) -> None:
    params: dict[str, str | int] = {"host": "127.0.0.1", "port": unused_port}
    headers = {"Sec-Fetch-Site": "cross-site"}
    for path in ["/test-latency", "/api/test-latency"]:
        assert (await open_api.get(path, params=params, headers=headers)).status_code == 403


async def test_same_origin_and_reads_pass_the_origin_check(open_api: httpx.AsyncClient) -> None:
    own = f"{open_api.base_url.scheme}://{open_api.base_url.netloc.decode()}"
    headers = {"Origin": own, "Sec-Fetch-Site": "same-origin"}
    assert (await open_api.post("/start", headers=headers)).status_code == 201
    cross_read = {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}
    assert (await open_api.get("/active_bots", headers=cross_read)).status_code == 200


@pytest.mark.parametrize(
    ("origin", "host", "same"),
    [
        ("https://lab.example", "lab.example", True),
        ("https://lab.example:443", "lab.example", True),
        ("http://lab.example", "lab.example:80", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("https://lab.example", "lab.example:8443", False),
        ("http://lab.example.evil", "lab.example", False),
        ("javascript://lab.example", "lab.example", False),
        ("http://lab.example:99999", "lab.example", False),
        ("http://lab.example", None, False),
    ],
)
def test_same_origin_compares_name_and_effective_port(
    origin: str, host: str | None, same: bool
) -> None:
    assert same_origin(origin, host) is same


@pytest.mark.parametrize("host", ["", "[::1", "[::1]x", "a:b", "a:70000", ":80"])
def test_malformed_hosts_do_not_parse(host: str) -> None:
    assert split_host(host) is None


async def test_the_schema_declares_the_bearer_token_when_one_is_set(
    guarded: httpx.AsyncClient, open_api: httpx.AsyncClient
) -> None:
    """Swagger UI's "Authorize" needs the scheme; public routes are marked as needing none."""
    schema = (await guarded.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schema["security"] == [{"bearer": []}]
    assert schema["paths"]["/healthz"]["get"]["security"] == []
    assert "security" not in schema["paths"]["/api/v1/experiments"]["get"]
    assert "security" not in (await open_api.get("/openapi.json")).json()


async def test_login_attempts_are_limited_per_address(guarded: httpx.AsyncClient) -> None:
    """Guessing the token through the login form (from a rebinding page, say) is slow."""
    wrong = [await guarded.post("/ui/login", data={"token": f"guess-{n}"}) for n in range(10)]
    assert {response.status_code for response in wrong} == {401}
    refused = await guarded.post("/ui/login", data={"token": TOKEN})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "login attempts" in refused.json()["detail"]
    assert "set-cookie" not in refused.headers
