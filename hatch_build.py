"""Puts the dashboard's chart library (uPlot, from npm) into the wheel.

An installed LatLab then serves it without a checkout: ``latlab/web/vendor/uplot`` is where
``src/latlab/web/assets.py`` looks first. An editable install reads node_modules/ in place,
so it needs nothing here (and works before ``npm ci`` ran).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

LIBRARY = Path("node_modules") / "uplot" / "dist"
IN_WHEEL = "latlab/web/vendor/uplot"


class VendorHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        source = Path(self.root) / LIBRARY
        if not (source / "uPlot.esm.js").is_file():
            raise FileNotFoundError(f"{source} is missing: run `npm ci` (make install) first")
        build_data["force_include"][str(source)] = IN_WHEEL
