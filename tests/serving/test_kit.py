"""The kit stands alone: a service built on it loads nothing else of LatLab."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import pkgutil, sys
import latlab.serving
for module in pkgutil.iter_modules(latlab.serving.__path__):
    __import__(f"latlab.serving.{module.name}")
print(sorted(m for m in sys.modules if m.startswith("latlab.") and m.count(".") == 1))
"""


def test_serving_imports_no_other_latlab_package() -> None:
    run = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=30
    )
    assert run.stdout.strip() == "['latlab.serving']"
