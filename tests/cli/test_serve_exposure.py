"""Who ``latlab serve`` lets reach the API: loopback by default, the network only with a token
or ``--insecure``; the token itself never appears in the output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import httpx
import pytest
from pydantic import SecretStr

from harness import latlab_serve, serve_log
from latlab.cli.binding import check_exposure, is_loopback
from latlab.cli.startup import StartupError
from latlab.settings import Settings
from services import free_port


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"],
)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.5", "lab.example", ""])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_network_bind_needs_a_token_or_insecure() -> None:
    with pytest.raises(StartupError, match="without a token") as refused:
        check_exposure(Settings(host="0.0.0.0"))
    assert refused.value.exit_code == 2
    with pytest.raises(StartupError):
        check_exposure(Settings(host="10.0.0.1", api_token=SecretStr("")))  # empty is no token
    check_exposure(Settings(host="0.0.0.0", api_token=SecretStr("t0ken")))
    check_exposure(Settings(host="0.0.0.0", insecure=True))
    check_exposure(Settings(host="127.0.0.1"))


async def test_token_option_protects_the_api_and_is_never_printed(tmp_path: Path) -> None:
    token = "s3cret-token-value"
    db = tmp_path / "latlab.db"
    with latlab_serve(db, "--no-targets", "--token", token) as (process, url):
        async with httpx.AsyncClient(base_url=url) as api:
            health = await api.get("/healthz")
            refused = await api.get("/api/v1/experiments")
            allowed = await api.get(
                "/api/v1/experiments", headers={"Authorization": f"Bearer {token}"}
            )
        process.terminate()
        assert process.wait(timeout=15) == 0
    assert (health.status_code, refused.status_code, allowed.status_code) == (200, 401, 200)
    output = serve_log(db, url).read_text()
    assert "API on http://127.0.0.1:" in output
    assert token not in output


def test_insecure_serves_every_address_without_a_token(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 inside a network namespace that has only loopback: nothing leaves."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LATLAB_")},
        "LATLAB_STORAGE_URL": "memory://",
    }
    serve = [sys.executable, "-m", "latlab", "serve", "--no-targets", "--insecure"]
    serve += ["--host", "0.0.0.0", "--port", str(free_port())]
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *serve]
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        try:
            lines = read_until(process.stderr, "no API token")
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert any("API on http://0.0.0.0:" in line for line in lines)
    assert "WARNING" in lines[-1]


def read_until(stream: IO[str], text: str) -> list[str]:
    """Lines up to the first that contains ``text`` (or up to the end of ``stream``)."""
    lines: list[str] = []
    while line := stream.readline():
        lines.append(line)
        if text in line:
            break
    return lines


def test_the_port_the_kernel_picked_is_protected_as_the_apis_own(tmp_path: Path) -> None:
    """With --port 0 the target policy must refuse the port actually bound, not port 0."""
    env = {**os.environ, "LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"}
    serve = [sys.executable, "-m", "latlab", "serve", "--no-targets", "--port", "0"]
    with subprocess.Popen(serve, env=env, stderr=subprocess.PIPE, text=True) as process:
        assert process.stderr is not None
        try:
            [announced] = [
                line for line in read_until(process.stderr, "API on") if "API on" in line
            ]
            url = announced.split("API on ")[1].strip()
            port = int(url.rsplit(":", 1)[1])
            spec = {"host": "127.0.0.1", "port": port, "path": "/stop/1"}
            answer = httpx.post(f"{url}/api/v1/experiments", json=spec)
        finally:
            process.terminate()
            process.wait(timeout=15)
    assert answer.status_code == 422
    assert "control API" in answer.text
