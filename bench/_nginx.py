"""Debian's nginx as a load target: one worker, ``200 ok`` on every path, on a free loopback
port, with its prefix, config, pid file, logs and temp dirs in a temporary directory (nothing
under /etc, /var or /run is read or written). Also the /proc readings a load bench needs: a
process's children, CPU time and memory, and how busy the whole machine was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _targets import free_port, wait_listening

BODY = b"ok"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# keepalive_requests: nginx closes a kept-alive connection after 1,000 requests by default;
# the generators are compared on the steady keep-alive path, not on reconnects.
CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    keepalive_requests 1000000000;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{body}";
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")


@dataclass(frozen=True)
class Nginx:
    url: str
    pid: int  # the master's; the worker is its child

    def cpu_s(self) -> float:
        """CPU time of the master and its worker so far."""
        return sum(process_cpu_s(pid) for pid in (self.pid, *children_of(self.pid)))


@contextmanager
def nginx_server(core: int) -> Iterator[Nginx]:
    """nginx pinned to ``core`` (``taskset``). Stopped (and reaped) on exit."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx not found: apt-get install nginx (or make services)")
    with tempfile.TemporaryDirectory(prefix="latlab-nginx-") as root:
        port = free_port()
        config = Path(root, "nginx.conf")
        config.write_text(CONFIG.format(root=root, port=port, body=BODY.decode()))
        # -e: the error log before the config is read (the default is under /var/log).
        command = ["taskset", "-c", str(core), binary, "-p", root, "-c", str(config)]
        process = subprocess.Popen([*command, "-e", f"{root}/error.log"])
        try:
            wait_listening(port, process)
            url = f"http://127.0.0.1:{port}/"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.read() == BODY, "nginx does not answer as configured"
            yield Nginx(url, process.pid)
        finally:
            process.terminate()  # SIGTERM: nginx's fast shutdown, workers included
            process.wait(timeout=10)


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (field 3 on); empty once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def children_of(parent: int) -> list[int]:
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if (_stat_fields(pid) or ["", "0"])[1] == str(parent)]


def process_cpu_s(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK if fields else 0.0


def status_kb(pid: int) -> dict[str, int]:
    """The ``kB`` lines of /proc/PID/status (VmRSS, VmHWM, ...); empty once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {
        name: int(value.split()[0])
        for name, _, value in (line.partition(":") for line in lines)
        if value.strip().endswith("kB")
    }


def machine_busy_s(core: int | None = None) -> float:
    """CPU time all cores (or ``core``) have been busy since boot, time stolen by the
    hypervisor included."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[1:9])
            return (user + nice + system + irq + softirq + steal) / CLK_TCK
    raise ValueError(f"no {name} in /proc/stat")
