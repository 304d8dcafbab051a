"""The dashboard's routes over HTTP: what a page is made of, who may see it, and `/`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from harness import run_api
from latlab.settings import Settings
from latlab.web.assets import uplot
from latlab.web.pages import pages_router

PAGES = ["/ui/", "/ui/experiments/1", "/ui/load-runs/1"]
TOKEN = "s3cret-token-for-tests"


@pytest.fixture
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as client:
        yield client


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(storage_url="memory://", freeze_gc=False, api_token=TOKEN)
    async with run_api(settings) as client:
        yield client


def local_urls(html: str) -> list[str]:
    return re.findall(r"""(?<![\w-])(?:src|href|action)=["']([^"']+)["']""", html)


async def test_every_page_loads_only_files_of_its_own_origin(api_client: httpx.AsyncClient) -> None:
    for path in PAGES:
        page = await api_client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in page.headers["content-security-policy"]
        for url in local_urls(page.text):
            assert url.startswith("/"), f"{path} loads {url}"
            assert not urlsplit(url).netloc, f"{path} loads {url}"
            if url.startswith("/ui/static/") or url.startswith("/ui/vendor/"):
                assert (await api_client.get(url)).status_code == 200, url
    # Imported by the pages' scripts from data-vendor, so named in no src or href.
    assert (await api_client.get("/ui/vendor/uplot/uPlot.esm.js")).status_code == 200


async def test_a_browser_asking_for_the_root_goes_to_the_dashboard(
    api_client: httpx.AsyncClient,
) -> None:
    browser = await api_client.get("/", headers={"Accept": "text/html,*/*"})
    assert (browser.status_code, browser.headers["location"]) == (307, "/ui/")
    assert (await api_client.get("/ui")).headers["location"] == "/ui/"
    other = await api_client.get("/", headers={"Accept": "application/json"})
    assert (other.status_code, other.json()) == (404, {"detail": "Not Found"})


async def test_a_bad_id_in_a_page_url_is_a_422(api_client: httpx.AsyncClient) -> None:
    for bad in ["0", "-3", "x", "99999999999999999999"]:
        for kind in ("experiments", "load-runs"):
            assert (await api_client.get(f"/ui/{kind}/{bad}")).status_code == 422, bad


async def test_without_a_token_the_login_page_sends_a_browser_on(
    api_client: httpx.AsyncClient,
) -> None:
    page = await api_client.get("/ui/login", params={"next": "/ui/experiments/3"})
    assert (page.status_code, page.headers["location"]) == (303, "/ui/")


async def test_the_login_page_escapes_what_it_is_given(guarded: httpx.AsyncClient) -> None:
    page = await guarded.get("/ui/login", params={"next": '/ui/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in page.text
    assert "&#34;&gt;&lt;script&gt;" in page.text


async def test_with_a_token_the_pages_open_without_it_and_the_api_asks(
    guarded: httpx.AsyncClient,
) -> None:
    """Found in review: a page asked for without the cookie went to the login page, so every
    link from another site (the SameSite=Strict cookie is not sent) asked to log in again.
    A page holds no data: it opens, and its script meets the API's 401."""
    for path in [*PAGES, "/ui/login", "/ui/static/latlab.css"]:
        assert (await guarded.get(path)).status_code == 200, path
    assert (await guarded.get("/api/v1/experiments")).status_code == 401
    assert (await guarded.get("/api/v1/overview/experiments")).status_code == 401
    logged_in = await guarded.post("/ui/login", data={"token": TOKEN, "next": "/ui/load-runs/7"})
    assert (logged_in.status_code, logged_in.headers["location"]) == (303, "/ui/load-runs/7")
    assert (await guarded.get("/api/v1/experiments")).status_code == 200  # the cookie, kept


async def test_the_login_page_offers_only_a_dashboard_page_as_next(
    guarded: httpx.AsyncClient,
) -> None:
    page = await guarded.get("/ui/login", params={"next": "/stop/3"})
    assert 'name="next" value="/ui/"' in page.text
    page = await guarded.get("/ui/login", params={"next": "/ui/experiments/2"})
    assert 'name="next" value="/ui/experiments/2"' in page.text


async def test_without_node_modules_the_pages_say_how_to_install(tmp_path: Path) -> None:
    app = FastAPI()
    app.include_router(pages_router(uplot(tmp_path / "node_modules", tmp_path / "vendor")))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in PAGES:
            page = await client.get(path)
            assert page.status_code == 503, path
            assert "make install" in page.text


async def test_the_new_experiment_form_asks_for_every_field_a_user_sets(
    api_client: httpx.AsyncClient,
) -> None:
    """Found in review: no scheme, so an https target could not be made from the form."""
    form = (await api_client.get("/ui/experiments/new")).text
    for field in ("scheme", "host", "port", "path", "method", "expect_status", "locations"):
        assert f'name="{field}"' in form, field
