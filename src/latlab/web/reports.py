"""Self-contained HTML reports of an experiment or a load run: k6's HTML report, for both.

One file holds everything: the figures and points as JSON, uPlot and the drawing script
inline, the styles inline. It opens from disk with no network and no server. Its policy
allows inline code only (``default-src 'none'``): a report can load nothing and send
nothing, wherever it is opened.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from latlab import __version__
from latlab.web.assets import STATIC, TEMPLATES, Library, uplot

# Points drawn of an experiment: beyond this many results, every k-th (a 1M-result run is
# a 5 MB report instead of 50 MB, and the chart's shape is the same).
MAX_POINTS = 100_000
REPORT_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)


class ReportUnavailable(RuntimeError):
    """The chart library is not installed (``make install``)."""


def _inline_text(text: str) -> str:
    """Text safe inside an inline <script> or <style>: it cannot close the element."""
    return text.replace("</", "<\\/")


def _inline_json(data: Any) -> str:
    # "<" escaped: a result's error text must not be able to end the script element.
    # allow_nan: NaN is no JSON, and the report's JSON.parse would refuse the whole file.
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")


def _read(library: Library, name: str) -> str:
    if not library.installed:
        raise ReportUnavailable(f"{library.directory} is missing: run `make install`")
    return (library.directory / name).read_text(encoding="utf-8")


def render(kind: str, title: str, data: dict[str, Any], chart: Library | None = None) -> str:
    """The report's HTML: ``kind`` is ``experiment`` or ``load-run``; ``data`` as the
    report script reads it (see :func:`experiment_data`, :func:`load_run_data`)."""
    chart = chart or uplot()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    values = {
        "kind": kind,
        "title": title,
        "version": __version__,
        "made_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "styles": _inline_text(
            _read(chart, "uPlot.min.css") + (STATIC / "latlab.css").read_text(encoding="utf-8")
        ),
        "uplot": _inline_text(_read(chart, "uPlot.iife.min.js")),
        "script": _inline_text((STATIC / "report.js").read_text(encoding="utf-8")),
        "data": _inline_json(data),
        "policy": REPORT_POLICY,
    }
    # The inline parts are ours, made safe above: autoescape would break them.
    for name in ("styles", "uplot", "script", "data"):
        values[name] = Markup(values[name])  # noqa: S704 (escaped for their elements above)
    return environment.get_template("report.html").render(**values)


async def experiment_points(results: AsyncIterable[list[Any]], count: int) -> list[list[Any]]:
    """``[seconds since the epoch, latency_ms or None, error or None]`` of every result (of
    every k-th past :data:`MAX_POINTS`), from pages of result records."""
    stride = max(1, math.ceil(count / MAX_POINTS))
    points: list[list[Any]] = []
    index = 0
    async for page in results:
        for result in page:
            if index % stride == 0:
                latency = None if result.latency_ms < 0 else round(result.latency_ms, 3)
                points.append([result.timestamp.timestamp(), latency, result.error])
            index += 1
    points.sort(key=lambda point: point[0])  # several locations: one time line
    return points


def experiment_data(
    experiment: dict[str, Any], stats: dict[str, Any], points: list[list[Any]], count: int
) -> dict[str, Any]:
    return {"experiment": experiment, "stats": stats, "points": points, "results": count}


def load_run_data(run: Mapping[str, Any], seconds: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    return {"run": dict(run), "seconds": [dict(second) for second in seconds]}
