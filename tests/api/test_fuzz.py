"""schemathesis over the whole control API, inside a network namespace (only loopback)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI

from fuzz_api import fuzz_api, parse_args, serving
from fuzz_report import ServerErrors

FUZZER = Path(__file__).parents[1] / "fuzz_api.py"
# Inside `unshare -n` only loopback exists (down until raised): experiments the fuzzer creates
# towards made-up hosts fail to connect instead of leaving the machine.
ISOLATED = 'ip link set lo up && exec "$0" "$@"'
# A default route over loopback: still nothing leaves, but the fuzzer must see a route and refuse.
ROUTED = 'ip link set lo up && ip route add default dev lo && exec "$0" "$@"'


def in_network_namespace(
    script: str, *args: str, timeout_s: float
) -> subprocess.CompletedProcess[str]:
    for tool in ("unshare", "ip"):
        assert shutil.which(tool), f"{tool} is needed to fuzz in a network namespace"
    # --map-root-user: a user namespace too, so that CI without root may make the network one.
    unshare = ["unshare", "--map-root-user", "--net"]
    command = [*unshare, "sh", "-c", script, sys.executable, str(FUZZER), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fuzzed_requests_get_no_server_error_and_documented_answers() -> None:
    result = in_network_namespace(ISOLATED, "--examples", "10", timeout_s=220)
    if result.returncode != 0:
        pytest.fail(f"fuzz_api exited {result.returncode}:\n{result.stdout}{result.stderr}")
    assert "fuzz_api: 0 failure(s)" in result.stdout


def test_fuzzer_refuses_to_run_where_a_route_leaves_the_machine() -> None:
    result = in_network_namespace(ROUTED, timeout_s=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "run it under unshare -n" in result.stdout


def divide_app() -> FastAPI:
    """An API with a bug for the fuzzer to find: ``n`` past 10 divides by zero (a 500).
    It sends nothing anywhere, so it is fuzzed outside a namespace."""
    app = FastAPI()

    @app.get("/divide")
    async def divide(n: int) -> dict[str, float]:
        return {"quotient": 1 / (n - n) if n > 10 else 0.0}

    return app


def test_fuzzer_reports_a_server_error_with_the_request_and_the_traceback() -> None:
    errors = ServerErrors()
    with serving(errors.wrap(divide_app())) as url:
        findings = fuzz_api(url, errors, parse_args(["--examples", "10"]))

    server_errors = [found for found in findings if "Server error" in found.report]
    assert server_errors
    assert len(findings) == len(server_errors)  # not reported again as an undocumented status
    for found in server_errors:
        assert found.operation == "GET /divide"
        assert "curl -X GET" in found.report
        assert "ZeroDivisionError" in (found.server_traceback or "")
