"""The dashboard's routes: pages under ``/ui/``, their files, and ``/`` for a browser.

A page is a template with no data in it: its module script reads ``/api/v1`` and the SSE
feeds. Every page forbids loading anything from elsewhere (``Content-Security-Policy``), so
the dashboard works, and is tested, with the network cut.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from latlab import __version__
from latlab.serving.redirects import safe_next
from latlab.web.assets import STATIC, TEMPLATES, Library, uplot
from latlab.web.forms import EXPERIMENT_FIELDS, LOAD_RUN_FIELDS

UI = "/ui"
STATIC_URL = f"{UI}/static"
VENDOR_URL = f"{UI}/vendor"
# Our own files and the libraries' only: no inline script, nothing from another origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ExperimentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The experiment's id.")]
LoadRunId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The load run's id.")]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name missing from a page is a bug, not ""
    )


def _render(templates: jinja2.Environment, request: Request, name: str, **values: Any) -> Response:
    root = request.scope.get("root_path", "")
    html = templates.get_template(name).render(
        root=root, static=root + STATIC_URL, vendor=root + VENDOR_URL, version=__version__, **values
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


def _not_installed(library: Library) -> HTMLResponse:
    html = (
        "<!DOCTYPE html><html><head><title>LatLab</title></head><body>"
        f"<h1>The dashboard's files are not installed</h1><p>{library.directory} is missing. "
        "Run <code>make install</code> in LatLab's checkout (it runs <code>npm ci</code>), "
        "then reload. The API answers meanwhile: <a href='/docs'>/docs</a>.</p></body></html>"
    )
    return HTMLResponse(html, status_code=503, headers=PAGE_HEADERS)


Page = Callable[..., Response]  # (request, template name, **values) -> the page


def _to_overview(request: Request, status_code: int) -> RedirectResponse:
    return RedirectResponse(request.scope.get("root_path", "") + f"{UI}/", status_code)


def _entrances(router: APIRouter, login_page: Page | None) -> None:
    """``/`` for a browser, ``/ui`` and, with a token to ask for, the login page."""

    @router.get("/")
    async def root(request: Request) -> Response:
        """A browser (``Accept: text/html``) goes to the dashboard; anything else, 404."""
        if "text/html" in request.headers.get("accept", ""):
            return _to_overview(request, 307)
        return Response('{"detail":"Not Found"}', 404, media_type="application/json")

    @router.get(UI)
    async def overview_slash(request: Request) -> Response:
        return _to_overview(request, 307)

    @router.get(f"{UI}/login")
    async def login(request: Request, next: str = f"{UI}/") -> Response:
        if login_page is None:  # no token: nothing to log in to
            return _to_overview(request, 303)
        return login_page(request, "login.html", title="Log in", next_path=safe_next(next))


# Pages with nothing in their path: path under /ui/ -> template, title and its values.
# The forms come before the pages of one job: "new" is not an id.
FIXED_PAGES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "/": ("overview.html", "Overview", {}),
    "/compare": ("compare.html", "Compare", {}),
    "/bots": ("bots.html", "Bots", {}),
    "/pipeline": ("pipeline.html", "Pipeline runs", {}),
    "/experiments/new": (
        "new_job.html",
        "New experiment",
        {"fields": EXPERIMENT_FIELDS, "endpoint": "experiments", "page": "experiments"},
    ),
    "/load-runs/new": (
        "new_job.html",
        "New load run",
        {"fields": LOAD_RUN_FIELDS, "endpoint": "load-runs", "page": "load-runs"},
    ),
}


def _fixed_page(page: Page, template: str, title: str, values: dict[str, Any]) -> Any:
    async def show(request: Request) -> Response:
        return page(request, template, title=title, **values)

    return show


def _job_pages(router: APIRouter, page: Page) -> None:
    for path, (template, title, values) in FIXED_PAGES.items():
        router.add_api_route(f"{UI}{path}", _fixed_page(page, template, title, values))

    @router.get(f"{UI}/experiments/{{experiment_id}}")
    async def experiment(request: Request, experiment_id: ExperimentId) -> Response:
        title = f"Experiment {experiment_id}"
        return page(request, "experiment.html", title=title, experiment_id=experiment_id)

    @router.get(f"{UI}/load-runs/{{load_run_id}}")
    async def load_run(request: Request, load_run_id: LoadRunId) -> Response:
        title = f"Load run {load_run_id}"
        return page(request, "load_run.html", title=title, load_run_id=load_run_id)


def pages_router(chart: Library, *, token_set: bool = False) -> APIRouter:
    """The pages; with ``chart`` (uPlot) missing they say how to install it. ``token_set``:
    the API asks for a token, so the login page has something to ask for."""
    templates = _environment()
    router = APIRouter(include_in_schema=False)

    def plain_page(request: Request, name: str, **values: Any) -> Response:
        return _render(templates, request, name, **values)

    def page(request: Request, name: str, **values: Any) -> Response:
        if not chart.installed:
            return _not_installed(chart)
        return plain_page(request, name, **values)

    _entrances(router, plain_page if token_set else None)
    _job_pages(router, page)
    return router


def install_pages(app: FastAPI, *, token_set: bool = False) -> None:
    """The pages, our files under ``/ui/static`` and uPlot's under ``/ui/vendor/uplot``."""
    chart = uplot()
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="ui-static")
    if chart.installed:
        app.mount(f"{VENDOR_URL}/uplot", StaticFiles(directory=chart.directory), name="ui-uplot")
    app.include_router(pages_router(chart, token_set=token_set))
