"""Where the dashboard's files are: our own (``static/``) and the browser libraries.

The libraries come from the npm registry (pinned in package.json and its lock file) into the
checkout's ``node_modules`` (``make install`` runs ``npm ci``); a wheel carries them under
``latlab/web/vendor`` (the build hook ``hatch_build.py``). Nothing is loaded
from a CDN: a lab may have no internet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"
PACKAGED_VENDOR = WEB / "vendor"
# The checkout's node_modules (src/latlab/web/assets.py -> the repository root).
NODE_MODULES = WEB.parents[2] / "node_modules"


@dataclass(frozen=True, slots=True)
class Library:
    """One npm package's files that a page loads: ``directory`` holds ``files``."""

    name: str
    directory: Path
    files: tuple[str, ...]

    @property
    def installed(self) -> bool:
        return all((self.directory / file).is_file() for file in self.files)


def uplot(node_modules: Path | None = None, packaged: Path | None = None) -> Library:
    """uPlot: time series drawn on a canvas, fast with 100k points (48 kB minified).
    Looked for where the module says when called, not when it was imported."""
    files = ("uPlot.esm.js", "uPlot.iife.min.js", "uPlot.min.css")  # the pages', the reports'
    in_wheel = (packaged or PACKAGED_VENDOR) / "uplot"
    in_checkout = (node_modules or NODE_MODULES) / "uplot" / "dist"
    directory = in_wheel if in_wheel.is_dir() else in_checkout
    return Library("uplot", directory, files)
