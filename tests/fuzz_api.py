"""Fuzz the control API's whole OpenAPI with schemathesis; exit 1 on a 5xx or a schema breach.

Run only inside a network namespace with nothing but loopback (tests/api/test_fuzz.py does):

    unshare --map-root-user --net sh -c 'ip link set lo up && exec python tests/fuzz_api.py'

Experiments the fuzzer creates probe whatever host it made up; there they cannot leave the
machine. The run is deterministic: a fixed Hypothesis seed, no example database, a bounded
number of examples per operation and generation mode.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import requests
import schemathesis
import uvicorn
from pydantic import SecretStr
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import ASGIApp

from fuzz_report import (
    Finding,
    FuzzCase,
    LastExchange,
    Operation,
    ServerErrors,
    describe,
    finding,
)
from latlab.app import create_app
from latlab.settings import Settings

# Live feeds never end on their own; a fuzzed request would hold the run until its timeout.
STREAMING_PATHS = ["/api/v1/events", "/api/v1/experiments/{experiment_id}/events"]
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
TOKEN = "fuzz-token"
REQUEST_TIMEOUT_S = 10.0
SERVER_ERROR_WAIT_S = 5.0  # for the app call behind a 5xx to return with its traceback
OFF_HOST = ("198.51.100.1", 9)  # TEST-NET-2; a UDP connect() only routes, it sends nothing


def network_is_isolated() -> bool:
    """True when no route leads off the machine (a UDP connect only asks the routing table)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(OFF_HOST)
        except OSError:
            return True
    return False


def app_settings(directory: Path) -> Settings:
    return Settings(
        storage_url=f"sqlite+aiosqlite:///{directory / 'fuzz.db'}",
        api_token=SecretStr(TOKEN),
        bots_log_ticks=False,
        freeze_gc=False,
        log_level="critical",
    )


@contextlib.contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """``app`` under uvicorn on a free loopback port, in a thread; its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Jobs still probing (timeouts up to 300 s) are cancelled by the lifespan, not awaited.
        server.should_exit = True
        thread.join(timeout=15)


def boundary_failures(
    schema: schemathesis.BaseSchema, operation: Operation, caller: Caller
) -> list[Finding]:
    """Schemathesis' coverage cases (boundaries, missing and wrong-typed values, unexpected
    methods): a fixed list, sent whole; the first failure of each check is reported."""
    config = schema.config.generation_for(operation=operation, phase="coverage")
    cases = schema.iter_coverage_cases(operation, generation_modes=MODES, generation_config=config)
    failed: dict[str, Finding] = {}
    for case in cases:
        checks = [check for check in CHECKS if check.__name__ not in failed]
        try:
            caller.call_and_check(case, checks)
        except (Exception, FailureGroup) as exc:
            name = "no answer" if caller.failed_check is None else caller.failed_check.__name__
            failed[name] = finding(operation.label, "boundary", caller.last, exc)
            if caller.failed_check is None:
                break
    return list(failed.values())


def fuzz_operation(
    operation: Operation,
    mode: schemathesis.GenerationMode,
    caller: Caller,
    options: argparse.Namespace,
) -> list[Finding]:
    """Every check that fails on one operation, each with a case that fails it.

    Hypothesis stops at the first failure; the operation is fuzzed again without the check that
    failed, so a schema mismatch cannot hide a server error behind it. (Schemathesis' cases do
    not shrink much: the case reported is mostly the first that failed.)
    """
    findings: list[Finding] = []
    checks = list(CHECKS)
    while checks:
        found = first_failure(operation, mode, caller, checks, options)
        if found is None:
            break
        findings.append(found)
        if caller.failed_check is None:  # no answer at all: fuzzing on would only repeat it
            break
        checks.remove(caller.failed_check)
    return findings


def first_failure(
    operation: Operation,
    mode: schemathesis.GenerationMode,
    caller: Caller,
    checks: list[CheckFunction],
    options: argparse.Namespace,
) -> Finding | None:
    @hypothesis.settings(
        max_examples=options.examples,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )
    @hypothesis.seed(options.seed)
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def check(case: FuzzCase) -> None:
        caller.call_and_check(case, checks)

    try:
        check()
    except hypothesis.errors.Unsatisfiable:  # nothing to negate: the operation takes no input
        return None
    except (Exception, FailureGroup) as exc:  # Hypothesis replays the failing case last
        return finding(operation.label, str(mode), caller.last, exc)
    return None


class Caller:
    """Sends cases to the API and checks the answers; keeps the last exchange for the report."""

    def __init__(self, base_url: str, errors: ServerErrors) -> None:
        self.base_url = base_url
        self.errors = errors
        self.session = requests.Session()
        self.headers = {"Authorization": f"Bearer {TOKEN}"}
        self.last: LastExchange | None = None
        self.failed_check: CheckFunction | None = None

    def call_and_check(self, case: FuzzCase, checks: list[CheckFunction]) -> None:
        self.errors.clear()
        self.last = LastExchange(case)
        self.failed_check = None
        response = case.call(
            base_url=self.base_url,
            session=self.session,
            headers=self.headers,
            timeout=REQUEST_TIMEOUT_S,
        )
        wait_s = SERVER_ERROR_WAIT_S if response.status_code >= 500 else 0.0
        self.last = LastExchange(case, self.errors.latest(wait_s))
        if response.status_code >= 500 and not_a_server_error not in checks:
            return  # the server error is reported already; it is no schema breach besides
        for check in checks:  # one at a time, to know which one failed
            self.failed_check = check
            case.validate_response(response, checks=[check], headers=self.headers)
        self.failed_check = None


def fuzz_api(base_url: str, errors: ServerErrors, options: argparse.Namespace) -> list[Finding]:
    """Every operation of the schema at ``base_url`` but the live feeds, one after another."""
    loaded = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    schema = loaded.exclude(path=STREAMING_PATHS)
    caller = Caller(base_url, errors)
    findings = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()
        operation = result.ok()
        findings += boundary_failures(schema, operation, caller)
        for mode in MODES:
            findings += fuzz_operation(operation, mode, caller, options)
    return findings


def run(options: argparse.Namespace) -> list[Finding]:
    errors = ServerErrors()
    with tempfile.TemporaryDirectory() as tmp:
        app = errors.wrap(create_app(app_settings(Path(tmp))))
        with serving(app) as url:
            return fuzz_api(url, errors, options)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--examples", type=int, default=20, help="Cases per operation and mode.")
    parser.add_argument("--seed", type=int, default=20240909, help="Hypothesis seed.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    if not network_is_isolated():
        print("fuzz_api: refusing to run with a route off this machine; run it under unshare -n")
        return 2
    started = time.monotonic()
    findings = run(options)
    for found in findings:
        print(describe(found))
    elapsed_s = time.monotonic() - started
    print(f"fuzz_api: {len(findings)} failure(s), seed {options.seed}, {elapsed_s:.1f} s")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
