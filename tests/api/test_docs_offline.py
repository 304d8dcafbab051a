"""The API docs render with the network cut: every asset comes from LatLab itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page, Route, async_playwright

from harness import run_api
from latlab.api.docs import install_docs
from latlab.settings import Settings

CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/test-services.sh installs it
PAGES = ["/docs", "/apidocs/", "/apidocs", "/redoc"]
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture
async def api_client() -> AsyncIterator[httpx.AsyncClient]:
    async with run_api(Settings(storage_url="memory://", freeze_gc=False)) as client:
        yield client


def referenced_urls(html: str) -> list[str]:
    """Every URL the page names: attributes, and quoted URLs in its inline script."""
    attributes = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    quoted = re.findall(r"""["'](\w+://[^"']*|//[^"']*)["']""", html)
    return attributes + quoted


async def test_docs_pages_name_only_local_urls(api_client: httpx.AsyncClient) -> None:
    assets: set[str] = set()
    for page in PAGES:
        response = await api_client.get(page)
        assert response.status_code == 200, page
        assert "default-src 'self'" in response.headers["content-security-policy"]
        urls = referenced_urls(response.text)
        assert urls, page
        for url in urls:
            assert not urlsplit(url).netloc, f"{page} loads {url}"
            assert url.startswith("/"), f"{page} loads {url}"
        assets.update(url for url in urls if url.startswith("/docs/assets/"))
    assert len(assets) >= 4  # Swagger UI's script, style and icon; ReDoc's script

    for url in sorted(assets):
        response = await api_client.get(url)
        assert response.status_code == 200, url
        expected = CONTENT_TYPES[Path(url).suffix]
        assert response.headers["content-type"].startswith(expected), url
        assert len(response.content) > 100, url


async def test_oauth2_redirect_page_is_served_locally(api_client: httpx.AsyncClient) -> None:
    response = await api_client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert not [url for url in referenced_urls(response.text) if urlsplit(url).netloc]


async def test_without_node_modules_the_pages_say_how_to_install(tmp_path: Path) -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_docs(app, node_modules=tmp_path / "node_modules")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for page in PAGES:
            response = await client.get(page)
            assert response.status_code == 503, page
            assert "make install" in response.text
            assert not [url for url in referenced_urls(response.text) if urlsplit(url).netloc]
        assert (await client.get("/docs/assets/swagger-ui/swagger-ui.css")).status_code == 404


async def test_swagger_ui_and_redoc_render_with_the_network_cut(
    api_client: httpx.AsyncClient,
) -> None:
    blocked: list[str] = []

    async def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    async def rendered(page: Page, path: str, selector: str, text: str = "/healthz") -> str:
        await page.goto(f"{api_client.base_url}{path}")
        operation = page.locator(selector, has_text=text).first
        await operation.wait_for(timeout=15_000)
        return await operation.inner_text()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = await browser.new_page()
            await page.route("**/*", loopback_only)
            assert "/healthz" in await rendered(page, "/docs", ".opblock-summary-path")
            redoc_operation = "[data-section-id='tag/health/operation/healthz_healthz_get'] h2"
            assert "Healthz" in await rendered(page, "/redoc", redoc_operation, "Healthz")
        finally:
            await browser.close()
    assert blocked == []
