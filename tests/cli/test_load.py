"""``latlab load`` as a user runs it: a subprocess against LatLab's targets served by the test's
own event loop, whose request counters say what the command really sent."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from harness import bound_port
from latlab.serving.counting import REQUEST_CELLS
from latlab.targets.counters import CountsTable
from latlab.targets.server import TargetsServer
from latlab.targets.tickets import MemoryTickets
from services import free_port, wait_for_port


@dataclass
class Target:
    server: TargetsServer
    port: int

    def url(self, path: str = "/?a=1&b=2") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def counted(self) -> int:
        """Requests the target answered (``/metrics`` is not counted)."""
        return sum(self.server.counts.cells[:REQUEST_CELLS])


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = TargetsServer(work_s=0.1, tickets=MemoryTickets(), counts=CountsTable.in_memory(1))
    listener = await server.listen("127.0.0.1", 0)
    try:
        yield Target(server, bound_port(listener))
    finally:
        await server.close(grace_s=1.0)


@pytest.fixture(scope="module")
def deployed_port() -> Iterator[int]:
    """``latlab targets`` in a process of its own, on uvloop as deployed: the latency test
    measures the tool, not a target sharing the test's loop."""
    port = free_port()
    command = [sys.executable, "-m", "latlab", "targets", "--port", str(port)]
    process = subprocess.Popen(command, env={**untraced(), "LATLAB_LOG_LEVEL": "warning"})
    try:
        wait_for_port("127.0.0.1", port, 30, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)


def untraced() -> dict[str, str]:
    """This environment without coverage's subprocess tracing, which slows a timed loop."""
    skipped = ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    return {name: value for name, value in os.environ.items() if name not in skipped}


async def start_load(
    *args: str, env: dict[str, str] | None = None, timed: bool = False
) -> asyncio.subprocess.Process:
    """``timed``: a run whose latencies are asserted, so not slowed by coverage."""
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "latlab", "load", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**(untraced() if timed else os.environ), **(env or {})},
    )


async def load(*args: str, env: dict[str, str] | None = None, timed: bool = False) -> Outcome:
    process = await start_load(*args, env=env, timed=timed)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode is not None
    return Outcome(process.returncode, stdout.decode(), stderr.decode())


def read_json(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


async def test_requests_option_sends_exactly_that_many(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    outcome = await load(
        target.url(), "-n", "10000", "-c", "8", "--workers", "2", "--json", str(out)
    )
    assert outcome.code == 0, outcome.stderr
    assert target.counted == 10_000
    report = read_json(out)
    assert (report["requests"], report["errors"], report["status"]["2xx"]) == (10_000, 0, 10_000)


async def test_json_and_csv_agree_with_each_other(target: Target, tmp_path: Path) -> None:
    json_path, csv_path = tmp_path / "run.json", tmp_path / "seconds.csv"
    args = ("-d", "1.5s", "-c", "4", "--workers", "2", "--json", str(json_path))
    outcome = await load(target.url(), *args, "--csv", str(csv_path))
    assert outcome.code == 0, outcome.stderr
    report = read_json(json_path)
    for key in ("requests", "errors", "duration_s", "rps", "percentiles", "status"):
        assert key in report
    for key in ("errors_by_kind", "late_sends", "thresholds"):
        assert key in report
    assert set(report["latency_ms"]) == {"min", "mean", "p50", "p90", "p99", "p99_9", "max"}
    assert (report["corrected_latency_ms"], report["late_sends"]) == (None, None)
    assert report["percentiles"][-1]["total_count"] == report["requests"]
    with csv_path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    header = "second,requests,errors,rps,p50_ms,p90_ms,p99_ms,max_ms"
    assert csv_path.read_text().splitlines()[0] == header
    assert [int(row["second"]) for row in rows] == [0, 1]
    assert sum(int(row["requests"]) for row in rows) == report["requests"]
    assert 0 < report["requests"] <= target.counted  # the answers in flight at the end
    assert report["duration_s"] == 1.5


async def test_thresholds_met_exit_0(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    checks = ("--threshold", "p99<10s", "--threshold", "errors<1%", "--threshold", "rps>1")
    outcome = await load(
        target.url(), "-n", "2000", "-c", "2", "--workers", "1", *checks, "--json", str(out)
    )
    assert outcome.code == 0, outcome.stderr
    assert [t["ok"] for t in read_json(out)["thresholds"]] == [True, True, True]


async def test_a_failed_threshold_exits_99(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    checks = ("--threshold", "p50<1us", "--threshold", "errors<=0%")
    outcome = await load(
        target.url(), "-n", "2000", "-c", "2", "--workers", "1", *checks, "--json", str(out)
    )
    assert outcome.code == 99, outcome.stderr
    judged = read_json(out)["thresholds"]
    assert [(t["expression"], t["ok"]) for t in judged] == [
        ("p50<1us", False),
        ("errors<=0%", True),
    ]
    assert judged[0]["value"] > 0.001
    assert "FAILED" in outcome.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["{url}", "-n", "10", "-d", "1s"], {}, "not both", id="n-and-d"),
        pytest.param(["{url}", "-c", "0"], {}, "connections must be at least 1", id="c-0"),
        pytest.param(["{url}", "--rate", "0"], {}, "rate must be a finite number", id="rate-0"),
        pytest.param(
            ["{url}", "--rate", "1e400"], {}, "rate must be a finite number", id="rate-inf"
        ),
        pytest.param(["{url}", "--rate", "nan"], {}, "rate must be a finite number", id="rate-nan"),
        pytest.param(
            ["{url}", "--probe", "0.0001"],
            {},
            "probe interval must be at least 0.001 s",
            id="probe-below-1ms",
        ),
        pytest.param(
            ["{url}", "--ca-file", "/nonexistent/ca.pem"],
            {},
            "--ca-file: cannot load",
            id="ca-file",
        ),
        pytest.param(
            ["{url}", "--csv", "/proc/latlab-load.csv"],
            {},
            "--csv: cannot write /proc/latlab-load.csv",
            id="csv-in-proc",
        ),
        pytest.param(["http://127.0.0.1:99999/"], {}, "bad port", id="bad-url"),
        pytest.param(["ftp://127.0.0.1:{port}/"], {}, "must be http or https", id="ftp"),
        pytest.param(
            ["{url}", "--threshold", "p99<10"], {}, "'p99<10' is not understood", id="threshold"
        ),
        pytest.param(["http://169.254.169.254/"], {}, "link-local", id="metadata-address"),
        pytest.param(
            ["{url}"], {"LATLAB_TARGETS_DENY": "127.0.0.0/8"}, "denied by", id="denied-by-policy"
        ),
    ],
)
async def test_bad_usage_exits_2_with_one_line_and_sends_nothing(
    target: Target, args: list[str], env: dict[str, str], message: str
) -> None:
    filled = [arg.format(url=target.url(), port=target.port) for arg in args]
    outcome = await load(*filled, "--workers", "1", env=env)
    assert outcome.code == 2
    assert len(outcome.stderr.splitlines()) == 1
    assert message in outcome.stderr
    assert outcome.stdout == ""
    assert target.counted == 0


async def test_an_output_file_created_by_the_check_is_removed_when_nothing_ran(
    target: Target, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    outcome = await load(
        target.url(), "--json", str(out), env={"LATLAB_TARGETS_DENY": "127.0.0.0/8"}
    )
    assert outcome.code == 2
    assert not out.exists()


async def test_unreachable_target_exits_1_with_one_line(unused_port: int) -> None:
    outcome = await load(f"http://127.0.0.1:{unused_port}/", "-n", "5")
    assert outcome.code == 1
    assert (
        outcome.stderr
        == f"latlab load: cannot reach http://127.0.0.1:{unused_port}/: connection refused\n"
    )


async def test_p50_against_a_20_ms_delay_is_within_1_ms(deployed_port: int, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    # One connection: the figure is the tool's own, not a queue in the Python target.
    args = ("-d", "2s", "-c", "1", "--workers", "1", "--json", str(out))
    outcome = await load(f"http://127.0.0.1:{deployed_port}/delay?ms=20", *args, timed=True)
    assert outcome.code == 0, outcome.stderr
    report = read_json(out)
    assert report["requests"] > 80
    assert 19.0 <= report["latency_ms"]["p50"] <= 21.0


async def test_rate_runs_the_open_model_with_corrected_latency(
    target: Target, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    args = ("--rate", "200", "-d", "1s", "-c", "4", "--workers", "2", "--json", str(out))
    outcome = await load(target.url(), *args)
    assert outcome.code == 0, outcome.stderr
    report = read_json(out)
    assert 190 <= report["requests"] <= 201
    assert report["corrected_latency_ms"]["p50"] >= report["latency_ms"]["min"]
    assert isinstance(report["late_sends"], int)
    assert (report["model"], report["rate"]) == ("open", 200)


async def test_probe_reports_a_fresh_connection_distribution_apart(
    deployed_port: int, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    args = ("--probe", "0.1s", "-d", "1s", "-c", "2", "--workers", "1", "--json", str(out))
    outcome = await load(f"http://127.0.0.1:{deployed_port}/delay?ms=5", *args)
    assert outcome.code == 0, outcome.stderr
    probe = read_json(out)["probe"]
    assert 5 <= probe["count"] <= 11
    assert probe["errors"] == 0
    assert probe["min"] >= 5.0
    assert "probe (" in outcome.stdout


async def test_warmup_requests_are_sent_but_not_counted(target: Target, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    args = ("--warmup", "300ms", "-n", "1000", "-c", "2", "--workers", "1", "--json", str(out))
    outcome = await load(target.url(), *args)
    assert outcome.code == 0, outcome.stderr
    assert read_json(out)["requests"] == 1000
    assert target.counted > 1000


async def test_off_a_terminal_each_second_is_one_plain_line(target: Target) -> None:
    outcome = await load(target.url(), "-d", "2s", "-c", "2", "--workers", "1")
    assert outcome.code == 0, outcome.stderr
    assert "\x1b" not in outcome.stdout
    seconds = [line for line in outcome.stdout.splitlines() if line.startswith("second ")]
    assert [line.split(":")[0] for line in seconds] == ["second 0", "second 1"]
    assert any(line.startswith("  requests ") for line in outcome.stdout.splitlines())


async def test_on_a_terminal_a_live_view_shows_the_run_then_the_summary(target: Target) -> None:
    main_fd, terminal_fd = os.openpty()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "latlab", "load", target.url(), "-d", "1s", "-c", "2"),
        stdout=terminal_fd,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(terminal_fd)
    try:
        shown = await asyncio.get_running_loop().run_in_executor(None, read_to_end, main_fd)
    finally:
        os.close(main_fd)
    assert await process.wait() == 0
    text = shown.decode()
    assert "p99 so far" in text
    assert "━" in text  # the progress bar
    assert "  requests " in text
    assert "second 0:" not in text


def read_to_end(fd: int) -> bytes:
    """All a terminal showed until its last writer closed it (Linux then says EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_quiet_prints_only_the_summary(target: Target) -> None:
    outcome = await load(target.url(), "-n", "500", "-c", "1", "--workers", "1", "--quiet")
    assert outcome.code == 0, outcome.stderr
    assert not any(line.startswith("second ") for line in outcome.stdout.splitlines())
    assert "500 in" in outcome.stdout


async def test_a_reader_that_stops_early_loses_neither_the_run_nor_the_files(
    target: Target, tmp_path: Path
) -> None:
    json_path, csv_path = tmp_path / "run.json", tmp_path / "seconds.csv"
    read_fd, write_fd = os.pipe()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "latlab", "load", target.url(), "-d", "2s", "-c", "2"),
        *("--workers", "1", "--json", str(json_path), "--csv", str(csv_path)),
        stdout=write_fd,
        stderr=asyncio.subprocess.PIPE,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:  # `| head -1`: the second line meets a closed pipe
        first = await asyncio.get_running_loop().run_in_executor(None, reader.readline)
    _, stderr = await asyncio.wait_for(process.communicate(), 40)
    assert first.startswith(b"second 0:")
    assert (process.returncode, stderr) == (0, b"")
    assert read_json(json_path)["duration_s"] == 2.0
    assert len(csv_path.read_text().splitlines()) == 3


@pytest.mark.parametrize("closing", ["<&-", ">&-", "2>&-"], ids=["stdin", "stdout", "stderr"])
async def test_a_closed_standard_stream_does_not_stop_the_run(
    target: Target, tmp_path: Path, closing: str
) -> None:
    out = tmp_path / "run.json"
    args = (target.url(), "-n", "100", "-c", "2", "--workers", "1", "--json", str(out))
    command = shlex.join((sys.executable, "-m", "latlab", "load", *args))
    process = await asyncio.create_subprocess_shell(
        f"exec {command} {closing}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 40)
    assert process.returncode == 0, stderr
    assert read_json(out)["requests"] == target.counted == 100


async def test_interrupt_stops_and_still_reports_what_was_measured(
    target: Target, tmp_path: Path
) -> None:
    out = tmp_path / "run.json"
    process = await start_load(
        target.url(), "-d", "30s", "-c", "2", "--workers", "2", "--json", str(out)
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 20)
    assert first.startswith(b"second 0:")
    process.send_signal(signal.SIGINT)
    rest, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 130, stderr
    report = read_json(out)
    assert report["interrupted"] is True
    assert 0 < report["requests"] <= target.counted
    assert 1.0 <= report["duration_s"] < 5.0
    assert b"(interrupted)" in rest


async def answer_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def test_https_trusts_the_ca_file_and_refuses_an_unknown_certificate(
    tmp_path: Path,
) -> None:
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file, out = tmp_path / "ca.pem", tmp_path / "run.json"
    authority.cert_pem.write_to_path(str(ca_file))
    server = await asyncio.start_server(answer_forever, "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{bound_port(server)}/"
    args = ("-n", "300", "-c", "2", "--workers", "1", "--probe", "50ms", "--json", str(out))
    try:
        trusted = await load(url, *args, "--ca-file", str(ca_file))
        unknown = await load(url, "-n", "10")
        insecure = await load(url, "-n", "10", "--insecure")
    finally:
        server.close()
        await server.wait_closed()
    assert trusted.code == 0, trusted.stderr
    report = read_json(out)
    assert (report["requests"], report["errors"], report["probe"]["errors"]) == (300, 0, 0)
    assert unknown.code == 1
    assert "certificate verify failed" in unknown.stderr
    assert insecure.code == 0, insecure.stderr
