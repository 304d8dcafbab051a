"""The API docs, offline: Swagger UI (``/docs``, ``/apidocs/``) and ReDoc (``/redoc``).

Their browser code comes from the npm packages ``swagger-ui-dist`` and ``redoc`` (pinned in
package.json, installed into node_modules/ by ``make install``) and is served by LatLab itself
under ``/docs/assets/``: the pages never load anything from a CDN, so they render with the
network cut. An installed wheel carries the files it needs (``latlab/api/vendor``, put there by
hatch_build.py). Without either the pages say how to install it instead of going blank.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
# The checkout's node_modules (src/latlab/api/docs.py -> the repository root).
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
# Where a wheel carries the files the pages load (hatch_build.py puts them there).
PACKAGED_VENDOR = Path(__file__).resolve().parent / "vendor"
# Everything the pages load comes from here: nothing else, so nothing from a CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class DocsAssets:
    """Where one UI's files are on disk, and the file its page cannot do without."""

    name: str
    directory: Path
    main_file: str

    @property
    def installed(self) -> bool:
        return (self.directory / self.main_file).is_file()

    def url(self, root_path: str, file: str) -> str:
        return f"{root_path}{ASSETS_URL}/{self.name}/{file}"


def swagger_assets(node_modules: Path = NODE_MODULES) -> DocsAssets:
    directory = _packaged("swagger-ui") or node_modules / "swagger-ui-dist"
    return DocsAssets("swagger-ui", directory, "swagger-ui-bundle.js")


def redoc_assets(node_modules: Path = NODE_MODULES) -> DocsAssets:
    directory = _packaged("redoc") or node_modules / "redoc" / "bundles"
    return DocsAssets("redoc", directory, "redoc.standalone.js")


def _packaged(name: str) -> Path | None:
    """The wheel's copy of a UI's files, if this is an installed wheel."""
    directory = PACKAGED_VENDOR / name
    return directory if directory.is_dir() else None


def _not_installed(assets: DocsAssets) -> HTMLResponse:
    html = (
        "<!DOCTYPE html><html><head><title>LatLab API docs</title></head><body>"
        f"<h1>The API docs' files are not installed</h1><p>{assets.directory} is missing. "
        "Run <code>make install</code> in LatLab's checkout (it runs <code>npm ci</code>), "
        "then reload. The schema itself is at <a href='/openapi.json'>/openapi.json</a>.</p>"
        "</body></html>"
    )
    return HTMLResponse(html, status_code=503)


def _with_policy(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _swagger_page(request: Request, assets: DocsAssets, openapi_url: str) -> HTMLResponse:
    if not assets.installed:
        return _not_installed(assets)
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=root + openapi_url,
        title="LatLab API",
        swagger_js_url=assets.url(root, "swagger-ui-bundle.js"),
        swagger_css_url=assets.url(root, "swagger-ui.css"),
        swagger_favicon_url=assets.url(root, "favicon-32x32.png"),
        oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
        swagger_ui_parameters={"validatorUrl": None},  # else it asks validator.swagger.io
    )
    return _with_policy(page)


def _redoc_page(
    request: Request, assets: DocsAssets, favicon: DocsAssets, openapi_url: str
) -> HTMLResponse:
    if not assets.installed:
        return _not_installed(assets)
    root = request.scope.get("root_path", "")
    page = get_redoc_html(
        openapi_url=root + openapi_url,
        title="LatLab API",
        redoc_js_url=assets.url(root, "redoc.standalone.js"),
        redoc_favicon_url=favicon.url(root, "favicon-32x32.png"),
        with_google_fonts=False,
    )
    return _with_policy(page)


def install_docs(app: FastAPI, node_modules: Path = NODE_MODULES) -> None:
    """Serve the docs pages and their assets (create the app with ``docs_url=None``)."""
    swagger, redoc = swagger_assets(node_modules), redoc_assets(node_modules)
    openapi_url = app.openapi_url or "/openapi.json"
    for assets in (swagger, redoc):
        if assets.installed:
            app.mount(
                f"{ASSETS_URL}/{assets.name}",
                StaticFiles(directory=assets.directory),
                name=f"{assets.name}-assets",
            )

    async def swagger_ui(request: Request) -> HTMLResponse:
        return _swagger_page(request, swagger, openapi_url)

    async def redoc_ui(request: Request) -> HTMLResponse:
        return _redoc_page(request, redoc, swagger, openapi_url)

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    # /apidocs/ is where the original bot service's README points.
    for path in ("/docs", "/apidocs/", "/apidocs"):
        app.add_api_route(path, swagger_ui, include_in_schema=False)
    app.add_api_route("/redoc", redoc_ui, include_in_schema=False)
    app.add_api_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)


def document_bearer_token(app: FastAPI, public_paths: Collection[str]) -> None:
    """With a token set, the schema says so: Swagger UI shows "Authorize" (its "Try it out"
    then sends the token), and generated clients know the scheme. ``public_paths`` need none."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()  # built once and kept by FastAPI; the scheme is added once too
        if "security" not in schema:
            components = schema.setdefault("components", {})
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            for path in public_paths & schema.get("paths", {}).keys():
                for operation in schema["paths"][path].values():
                    operation["security"] = []
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
