"""Ordinary start-up mistakes: one line on stderr naming the setting, exit 2 (configuration)
or 3 (a dependency unreachable after ``LATLAB_STARTUP_TIMEOUT_S``).

Every case is a real ``python -m latlab`` process. They start together, a few at a time, when
the first test of the module asks for its outcome. How long the waits take is measured in
process, without the noise of start-up imports: test_startup_dependencies.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from latlab.cli.startup import explain
from latlab.settings import Settings
from outages import OwnRedis
from services import free_port

TIMEOUT_S = 1.0
PARALLEL_PROCESSES = 4
LATLAB = [sys.executable, "-m", "latlab"]
# `import asyncpg` fails as it does where the postgres extra is not installed.
WITHOUT_ASYNCPG = [
    sys.executable,
    "-c",
    "import sys; sys.modules['asyncpg'] = None; from latlab.cli.main import main; main()",
]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def line(self) -> str:
        assert len(self.lines) == 1, self.stderr
        return self.lines[0]


def run(command: list[str], env: Mapping[str, str]) -> Outcome:
    # Nothing from the caller's LATLAB_* settings; never the default ./latlab.db.
    base = {k: v for k, v in os.environ.items() if not k.startswith("LATLAB_")}
    defaults = {"LATLAB_STORAGE_URL": "memory://", "LATLAB_STARTUP_TIMEOUT_S": str(TIMEOUT_S)}
    done = subprocess.run(
        command,
        env={**base, **defaults, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return Outcome(done.returncode, done.stderr)


def cases(busy: int, held: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name: (command, environment). ``busy`` is a port in use; ``held`` is bound on
    127.0.0.1, so binding it on 0.0.0.0 too would fail "in use"."""
    serve = [*LATLAB, "serve", "--no-targets", "--port"]
    nowhere = free_port()  # nothing listens there
    shared, wild = free_port(), free_port()  # each asked of both servers
    return {
        "api_port_busy": ([*serve, str(busy)], {}),
        "targets_port_busy": (
            [*LATLAB, "serve", "--port", str(free_port()), "--targets-port", str(busy)],
            {},
        ),
        "targets_command_port_busy": ([*LATLAB, "targets", "--port", str(busy)], {}),
        "bad_port_variable": ([*LATLAB, "serve", "--no-targets"], {"LATLAB_PORT": "abc"}),
        "bad_storage_scheme": ([*serve, str(free_port())], {"LATLAB_STORAGE_URL": "foo://x"}),
        "bad_storage_option": ([*serve, str(free_port()), "--storage-url", "foo://x"], {}),
        "bad_log_level_option": ([*serve, str(free_port()), "--log-level", "loud"], {}),
        "verbose": ([*serve, str(busy), "--verbose"], {}),
        "missing_driver": (
            [*WITHOUT_ASYNCPG, "serve", "--no-targets", "--port", str(free_port())],
            {"LATLAB_STORAGE_URL": f"postgresql+asyncpg://127.0.0.1:{nowhere}/x"},
        ),
        "postgres_unreachable": (
            [*serve, str(free_port())],
            {"LATLAB_STORAGE_URL": f"postgresql+asyncpg://127.0.0.1:{nowhere}/x"},
        ),
        "mongo_unreachable": (
            [*serve, str(free_port())],
            {"LATLAB_STORAGE_URL": f"mongodb://127.0.0.1:{nowhere}"},
        ),
        "redis_unreachable": (
            [*serve, str(free_port())],
            {"LATLAB_REDIS_URL": f"redis://127.0.0.1:{nowhere}/0"},
        ),
        "open_bind_without_token": ([*serve, str(held), "--host", "0.0.0.0"], {}),
        "same_port_for_api_and_targets": (
            [*LATLAB, "serve", "--port", str(shared), "--targets-port", str(shared)],
            {},
        ),
        "targets_port_under_a_wildcard_api": (
            # In a network namespace with only loopback: were 0.0.0.0 served, none but us.
            [
                *["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *LATLAB],
                *["serve", "--host", "0.0.0.0", "--insecure", "--port", str(wild)],
            ],
            {"LATLAB_TARGETS_PORT": str(wild)},
        ),
    }


def malformed_cases(folder: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Malformed URLs and files in the settings: refused before anything is opened."""
    serve = [*LATLAB, "serve", "--no-targets", "--port", str(free_port())]
    with_targets = [*LATLAB, "serve", "--port", str(free_port()), "--targets-port", "0"]
    not_a_database = folder / "notes.db"
    not_a_database.write_bytes(b"these are notes, not a database\n" * 200)
    return {
        "redis_url_not_redis": (with_targets, {"LATLAB_REDIS_URL": "http://x"}),
        "redis_port_not_a_number": (serve, {"LATLAB_REDIS_URL": "redis://127.0.0.1:abc/0"}),
        "targets_command_redis_url_not_redis": (
            [*LATLAB, "targets", "--port", "0"],
            {"LATLAB_REDIS_URL": "http://x"},
        ),
        "influx_url_without_scheme": (serve, {"LATLAB_INFLUX_URL": "127.0.0.1:8086"}),
        "influx_url_not_a_url": (serve, {"LATLAB_INFLUX_URL": "notaurl"}),
        "postgres_port_not_a_number": (
            serve,
            {"LATLAB_STORAGE_URL": "postgresql+asyncpg://u:p@127.0.0.1:abc/db"},
        ),
        "mongo_password_not_escaped": (
            serve,
            {"LATLAB_STORAGE_URL": "mongodb://a:b:c@127.0.0.1/db"},
        ),
        "sqlite_file_not_a_database": (
            serve,
            {"LATLAB_STORAGE_URL": f"sqlite+aiosqlite:///{not_a_database}"},
        ),
        "probe_ca_file_missing": (serve, {"LATLAB_PROBE_CA_FILE": str(folder / "no-ca.pem")}),
    }


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Outcome]]]:
    with contextlib.ExitStack() as stack:
        busy = stack.enter_context(socket.socket())
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        held = stack.enter_context(socket.socket())
        held.bind(("127.0.0.1", 0))  # bound, not listening: no server
        table = cases(busy.getsockname()[1], held.getsockname()[1])
        table |= malformed_cases(tmp_path_factory.mktemp("malformed"))
        pool = stack.enter_context(ThreadPoolExecutor(PARALLEL_PROCESSES))
        yield {name: pool.submit(run, *case) for name, case in table.items()}


def test_api_port_in_use_exits_2_naming_the_port_and_its_setting(
    outcome: dict[str, Future[Outcome]],
) -> None:
    result = outcome["api_port_busy"].result()
    assert result.returncode == 2
    assert "already in use" in result.line
    assert "LATLAB_PORT / --port" in result.line


def test_targets_port_in_use_exits_2_naming_the_targets_setting(
    outcome: dict[str, Future[Outcome]],
) -> None:
    for name, option in [
        ("targets_port_busy", "--targets-port"),
        ("targets_command_port_busy", "--port"),
    ]:
        result = outcome[name].result()
        assert result.returncode == 2
        assert "already in use" in result.line
        assert f"LATLAB_TARGETS_PORT / {option}" in result.line


def test_a_bad_latlab_variable_exits_2_naming_it(outcome: dict[str, Future[Outcome]]) -> None:
    result = outcome["bad_port_variable"].result()
    assert result.returncode == 2
    assert result.line.startswith("latlab: LATLAB_PORT='abc': Input should be a valid integer")


def test_an_unknown_storage_scheme_exits_2(outcome: dict[str, Future[Outcome]]) -> None:
    result = outcome["bad_storage_scheme"].result()
    assert result.returncode == 2
    assert "LATLAB_STORAGE_URL: unsupported storage URL scheme 'foo'" in result.line


def test_the_storage_and_log_level_options_are_checked_as_their_variables(
    outcome: dict[str, Future[Outcome]],
) -> None:
    storage = outcome["bad_storage_option"].result()
    assert storage.returncode == 2
    assert "unsupported storage URL scheme 'foo'" in storage.line
    level = outcome["bad_log_level_option"].result()
    assert level.returncode == 2
    assert level.line.startswith("latlab: LATLAB_LOG_LEVEL='loud'")


def test_a_missing_driver_exits_2_naming_the_extra(outcome: dict[str, Future[Outcome]]) -> None:
    result = outcome["missing_driver"].result()
    assert result.returncode == 2
    assert "pip install 'latlab[postgres]'" in result.line


@pytest.mark.parametrize(
    ("case", "setting"),
    [
        ("postgres_unreachable", "LATLAB_STORAGE_URL"),
        ("mongo_unreachable", "LATLAB_STORAGE_URL"),
        ("redis_unreachable", "LATLAB_REDIS_URL"),
    ],
)
def test_an_unreachable_dependency_exits_3_after_the_startup_timeout(
    outcome: dict[str, Future[Outcome]], case: str, setting: str
) -> None:
    result = outcome[case].result()
    assert result.returncode == 3
    assert f"not reachable after {TIMEOUT_S:g} s" in result.line
    assert setting in result.line
    assert "LATLAB_STARTUP_TIMEOUT_S" in result.line


@pytest.mark.parametrize(
    ("case", "setting", "hint"),
    [
        ("redis_url_not_redis", "LATLAB_REDIS_URL", "use one of: redis://"),
        ("redis_port_not_a_number", "LATLAB_REDIS_URL", "port 'abc'"),
        ("targets_command_redis_url_not_redis", "LATLAB_REDIS_URL", "use one of: redis://"),
        ("influx_url_without_scheme", "LATLAB_INFLUX_URL", "e.g. http://127.0.0.1:8086"),
        ("influx_url_not_a_url", "LATLAB_INFLUX_URL", "e.g. http://127.0.0.1:8086"),
        ("postgres_port_not_a_number", "LATLAB_STORAGE_URL", "port 'abc'"),
        ("mongo_password_not_escaped", "LATLAB_STORAGE_URL", "percent-encode"),
        ("sqlite_file_not_a_database", "LATLAB_STORAGE_URL", "notes.db is not a SQLite database"),
        ("probe_ca_file_missing", "LATLAB_PROBE_CA_FILE", "no-ca.pem"),
    ],
)
def test_a_malformed_url_or_file_exits_2_naming_its_setting(
    outcome: dict[str, Future[Outcome]], case: str, setting: str, hint: str
) -> None:
    result = outcome[case].result()
    assert result.returncode == 2, result.stderr
    assert setting in result.line
    assert hint in result.line


def test_a_network_bind_without_token_is_refused_before_binding(
    outcome: dict[str, Future[Outcome]],
) -> None:
    result = outcome["open_bind_without_token"].result()
    assert result.returncode == 2
    # Binding 0.0.0.0 on the held port would have failed "already in use" instead.
    assert "refusing to serve the API on 0.0.0.0 without a token" in result.line
    assert "LATLAB_API_TOKEN" in result.line
    assert "--insecure" in result.line


@pytest.mark.parametrize(
    "case", ["same_port_for_api_and_targets", "targets_port_under_a_wildcard_api"]
)
def test_the_api_and_the_targets_on_one_port_exit_2_naming_both_settings(
    outcome: dict[str, Future[Outcome]], case: str
) -> None:
    result = outcome[case].result()
    assert result.returncode == 2
    assert "LATLAB_PORT / --port" in result.line
    assert "LATLAB_TARGETS_PORT / --targets-port" in result.line


def test_verbose_adds_the_traceback_above_the_one_line(
    outcome: dict[str, Future[Outcome]],
) -> None:
    result = outcome["verbose"].result()
    assert result.returncode == 2
    assert result.lines[0] == "Traceback (most recent call last):"
    assert "OSError: [Errno 98]" in result.stderr
    assert result.lines[-1].startswith("latlab: port ")
    assert result.lines[-1].endswith("LATLAB_PORT / --port")


def test_typer_keeps_rejecting_a_bad_option_with_usage() -> None:
    done = subprocess.run(
        [*LATLAB, "serve", "--port", "abc"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "Usage:" in done.stderr


def test_a_bad_secret_setting_is_named_but_its_value_never_shown() -> None:
    with pytest.raises(ValidationError) as invalid:
        Settings(influx_password=12345, port=-1)
    failure = explain(invalid.value)
    assert failure is not None
    assert "LATLAB_INFLUX_PASSWORD:" in str(failure)
    assert "12345" not in str(failure)
    assert "LATLAB_PORT=-1:" in str(failure)


def test_a_validation_error_outside_the_settings_is_a_bug_not_a_setting() -> None:
    class Spec(BaseModel):
        count: int

    with pytest.raises(ValidationError) as invalid:
        Spec(count="many")
    assert explain(invalid.value) is None


def test_a_wrong_redis_password_exits_2_in_one_line_that_does_not_show_it() -> None:
    """Found by trying a worker with a wrong password: a traceback, exit 1 (serve did too)."""
    with OwnRedis(password="right-pw") as redis:
        wrong = redis.url.replace("right-pw", "wrong-pw")
        serve = [*LATLAB, "serve", "--no-targets", "--port", str(free_port())]
        result = run(serve, {"LATLAB_REDIS_URL": wrong})
    assert result.returncode == 2, result.stderr
    assert "Redis refused the user or password in LATLAB_REDIS_URL" in result.line
    assert "wrong-pw" not in result.stderr
