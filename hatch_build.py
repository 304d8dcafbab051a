"""Puts the browser libraries LatLab serves (from npm) into the wheel: the dashboard's chart
library (uPlot) and the API docs' Swagger UI and ReDoc.

An installed LatLab then serves them without a checkout: ``latlab/web/vendor`` and
``latlab/api/vendor`` are where ``src/latlab/web/assets.py`` and ``src/latlab/api/docs.py``
look first. An editable install reads node_modules/ in place, so it needs nothing here (and
works before ``npm ci`` ran). Only the files the pages load go in, not the packages' source
maps and other bundles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# (the package's directory in node_modules, where it goes in the wheel, the files it needs)
LIBRARIES = (
    (
        Path("uplot") / "dist",
        "latlab/web/vendor/uplot",
        ("uPlot.esm.js", "uPlot.iife.min.js", "uPlot.min.css"),
    ),
    (
        Path("swagger-ui-dist"),
        "latlab/api/vendor/swagger-ui",
        ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"),
    ),
    (Path("redoc") / "bundles", "latlab/api/vendor/redoc", ("redoc.standalone.js",)),
)


class VendorHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        node_modules = Path(self.root) / "node_modules"
        for directory, in_wheel, files in LIBRARIES:
            for name in files:
                source = node_modules / directory / name
                if not source.is_file():
                    raise FileNotFoundError(f"{source} is missing: run `npm ci` (make install)")
                build_data["force_include"][str(source)] = f"{in_wheel}/{name}"
