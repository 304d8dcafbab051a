"""A real InfluxDB 1.x (Debian package ``influxdb``) for the tests, on free loopback ports.

Each server gets its own config file and directories; every listener is on 127.0.0.1 and
everything optional (reporting, monitor store, graphite, collectd, ...) is off. It is started
by the tests themselves, never as a system service, and can be stopped and started again on
the same port and data (the outage tests). A missing ``influxd`` fails, it never skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from services import free_port

Point = dict[str, Any]

CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {auth}
  log-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false

[subscriber]
  enabled = false
"""


class InfluxServer:
    def __init__(self, root: Path, *, auth: bool = False) -> None:
        self.root = root
        self.http_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._config = root / "influxdb.conf"
        self._config.write_text(
            CONFIG.format(
                root=root, rpc_port=free_port(), http_port=self.http_port, auth=str(auth).lower()
            )
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        influxd = shutil.which("influxd")
        if influxd is None:
            raise RuntimeError(
                "influxd not found: apt-get install influxdb (scripts/test-services.sh)"
            )
        log = (self.root / "influxd.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [influxd, "-config", str(self._config)], stdout=log, stderr=log
            )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 30.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"influxd exited with {self._process.returncode}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 204:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"influxd did not answer /ping within {timeout_s} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def query(self, q: str, database: str = "math_server", **auth: str) -> list[dict[str, Any]]:
        """The series of one InfluxQL statement (``[]`` when it matches nothing)."""
        params = {"db": database, "epoch": "ns", **auth}  # credentials count only in the URL
        response = httpx.post(f"{self.url}/query", params=params, data={"q": q}, timeout=10)
        response.raise_for_status()
        result = json.loads(response.text)["results"][0]
        if "database not found" in result.get("error", ""):
            return []  # nothing written yet
        assert "error" not in result, result
        series: list[dict[str, Any]] = result.get("series", [])
        return series

    def points(self, measurement: str = "requests", database: str = "math_server") -> list[Point]:
        """Every point of a measurement, oldest first, as {column: value} (time in ns)."""
        found = self.query(f'SELECT * FROM "{measurement}"', database)
        if not found:
            return []
        columns = found[0]["columns"]
        return [dict(zip(columns, row, strict=True)) for row in found[0]["values"]]


@contextmanager
def influx_server(root: Path, *, auth: bool = False) -> Iterator[InfluxServer]:
    root.mkdir(parents=True, exist_ok=True)
    server = InfluxServer(root, auth=auth)
    server.start()
    try:
        yield server
    finally:
        server.stop()
