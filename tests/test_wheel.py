"""The wheel carries the browser files its pages load, and an install of it finds them.

Built with hatchling and the repository's build hook (hatch_build.py), from node_modules as
``make install`` leaves it; then unpacked and imported on its own, without the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRIED = {
    "latlab/web/vendor/uplot/uPlot.esm.js",
    "latlab/web/vendor/uplot/uPlot.iife.min.js",
    "latlab/web/vendor/uplot/uPlot.min.css",
    "latlab/api/vendor/swagger-ui/swagger-ui-bundle.js",
    "latlab/api/vendor/swagger-ui/swagger-ui.css",
    "latlab/api/vendor/swagger-ui/favicon-32x32.png",
    "latlab/api/vendor/redoc/redoc.standalone.js",
}
WHERE = """
import json
from latlab.api.docs import redoc_assets, swagger_assets
from latlab.web.assets import uplot
found = [swagger_assets(), redoc_assets()]
print(json.dumps([[str(a.directory), a.installed] for a in found]
                 + [[str(uplot().directory), uplot().installed]]))
"""


def test_the_wheel_carries_the_pages_libraries_and_an_install_finds_them(tmp_path: Path) -> None:
    """Found in review: the build hook was never run by a test, and the wheel carried uPlot
    but not Swagger UI or ReDoc, so /docs of an installed wheel said "not installed"."""
    built = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("latlab-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    assert names >= CARRIED
    assert not any(name.endswith(".map") for name in names)  # only what the pages load
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "installed")}
    looked = subprocess.run(
        [sys.executable, "-c", WHERE], env=environment, capture_output=True, text=True,
        timeout=60, check=True, cwd=tmp_path,
    )  # fmt: skip
    installed = tmp_path / "installed" / "latlab"
    assert json.loads(looked.stdout) == [
        [str(installed / "api" / "vendor" / "swagger-ui"), True],
        [str(installed / "api" / "vendor" / "redoc"), True],
        [str(installed / "web" / "vendor" / "uplot"), True],
    ]
