"""The pipeline (client → receiver → handler → writer) under load, embedded and with Redis.

Three modes, each on free loopback ports with its files and store in a temporary directory:

- embedded: ``latlab pipeline up`` (all four services in one process), the queue in a
  SQLite file, ``LATLAB_REDIS_URL`` unset;
- redis: a ``redis-server`` of its own (``--appendonly yes --appendfsync always``, nothing
  else persisted), then ``latlab pipeline server``, ``process`` and ``save`` as three
  processes with ``LATLAB_REDIS_URL`` pointing at it under a prefix of their own;
- receiver: the same Redis and ``latlab pipeline server`` alone (no handler, no writer):
  the acknowledgement path without the rest of the pipeline competing for the two cores.

Each mode is measured twice, with a request delay of 0:

1. Throughput: ``latlab pipeline send -c 64 -n N --delay-range 0`` (closed model). Acked
   req/s is N over the time from the start to the last acknowledgement (the receiver's
   ``GET /stats`` ``received``); written req/s is the lines added to 1.txt (the writer's
   ``GET /stats`` ``results_written``) over the time from the start until the last of them.
   Ack p50/p99 are the send's own (64 requests always in flight: latency at saturation).
2. Ack latency at a fixed rate: ``latlab load --rate 5000 -c 64 --workers 1`` (open model)
   POSTs ``{"request": {"id": <one uuid>, "delay": 0}}`` to ``/handler``: the receiver does
   not deduplicate, so every request is a receipt and a line of each file. Service latency
   (from the actual send) and corrected latency (from the intended send time) come from its
   ``--json``; goal: ack p99 < 5 ms (both, with no error and no missed send). Then it waits
   until 1.txt holds every receipt and reports how long after the last acknowledgement the
   last line came. Requests in flight when the load stops are not answered but may have
   been made durable: they are written too ("durable" counts them).

Both services' counters are polled every 20 ms over kept-alive connections, so times are
good to about 20 ms. At the end of each mode 2.txt and 1.txt are counted: each must hold as
many lines as the writer read receipts, and at least as many as the receiver answered.

Nothing is pinned: the Redis mode runs four processes (Redis and three services) and the
embedded mode's SQLite calls run in a thread beside its loop, so one core for the services
(and one for the generator) would measure a one-core pipeline; at 5,000 req/s the
generator needs under half a core. Instead the report shows, per phase, the share of a
core each service process and the generator (start-up included) used, and ``others``: the
share of both cores that processes not started here used meanwhile (machine_busy_s, as
bench/load_throughput.py does; time stolen by the hypervisor counts). A figure is worth
quoting only with ``others`` near 0 %.

The Redis mode's handler runs with the setting's default concurrency (10,000) unless
``--redis-handler-concurrency`` says otherwise (0: the default).

Every process started here is stopped on exit, Ctrl-C and SIGTERM included, and the
temporary directory removed.

    python bench/pipeline_throughput.py [--quick] [--requests N] [--rate R] [--seconds S]
                                        [--modes embedded,redis,receiver]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _nginx import machine_busy_s, process_cpu_s
from _targets import free_port, wait_listening

EMBEDDED, REDIS, RECEIVER = "embedded", "redis", "receiver"
MODES = (EMBEDDED, REDIS, RECEIVER)
POLL_S = 0.02
SETTLE_SAMPLES = 5  # 100 ms unchanged after the generator exited
STALL_S = 60.0  # no counter moved for this long: the phase gives up (reported, not hidden)
START_TIMEOUT_S = 60.0
GOAL_P99_MS = 5.0
ROLES = ("client", "receiver", "handler", "writer")
LATLAB = [sys.executable, "-m", "latlab"]


# --- services ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def cpu_s(self) -> float:
        return process_cpu_s(self.process.pid)


@dataclass(frozen=True)
class Pipeline:
    mode: str
    services: tuple[Service, ...]
    receiver_port: int
    writer_port: int | None  # None: no writer runs (the receiver alone)
    root: Path

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    @property
    def out_dir(self) -> Path:
        return self.root / "out"


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (each service shuts down cleanly on it), SIGKILL after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def log_tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return ""


def start(
    stack: contextlib.ExitStack, name: str, command: list[str], env: dict[str, str], root: Path
) -> Service:
    """``command`` as a subprocess logging to ``root/<name>.log``; stopped when ``stack``
    closes."""
    log = root / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=out)
    stack.callback(stop, process)
    return Service(name, process, log)


def wait_ports(service: Service, ports: Sequence[int]) -> None:
    for port in ports:
        try:
            wait_listening(port, service.process, START_TIMEOUT_S)
        except RuntimeError:
            raise RuntimeError(f"{service.name} did not start:\n{log_tail(service.log)}") from None


def clean_env(root: Path, **settings: str) -> dict[str, str]:
    """This environment without any LATLAB_ setting of the caller's, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LATLAB_")}
    env.update(
        LATLAB_LOG_LEVEL="warning",
        LATLAB_STORAGE_URL=f"sqlite+aiosqlite:///{root / 'latlab.db'}",
        LATLAB_PIPELINE_OUT_DIR=str(root / "out"),
    )
    env.update({f"LATLAB_{name.upper()}": value for name, value in settings.items()})
    return env


def port_settings(ports: dict[str, int]) -> dict[str, str]:
    return {f"pipeline_{role}_port": str(port) for role, port in ports.items()}


def embedded_pipeline(stack: contextlib.ExitStack, root: Path, extra: dict[str, str]) -> Pipeline:
    ports = {role: free_port() for role in ROLES}
    env = clean_env(root, **extra, **port_settings(ports))
    up = start(stack, "pipeline up", [*LATLAB, "pipeline", "up"], env, root)
    wait_ports(up, list(ports.values()))
    return Pipeline(EMBEDDED, (up,), ports["receiver"], ports["writer"], root)


def redis_server(stack: contextlib.ExitStack, root: Path) -> tuple[Service, int]:
    port = free_port()
    data = root / "redis"
    data.mkdir()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(data)]
    command += ["--save", "", "--daemonize", "no"]
    server = start(stack, "redis-server", command, dict(os.environ), root)
    wait_ports(server, [port])
    return server, port


# The Redis mode's services: command, role. The receiver alone runs only the first.
REDIS_SERVICES = (("server", "receiver"), ("process", "handler"), ("save", "writer"))


def redis_pipeline(
    stack: contextlib.ExitStack,
    root: Path,
    handler_concurrency: int,
    extra: dict[str, str],
    *,
    alone: bool = False,
) -> Pipeline:
    """Redis and the receiver, handler and writer; with ``alone``, Redis and the receiver."""
    redis, redis_port = redis_server(stack, root)
    ports = {role: free_port() for role in ROLES[1:]}
    settings = {
        **extra,
        "redis_url": f"redis://127.0.0.1:{redis_port}/0",
        "redis_prefix": f"bench-{secrets.token_hex(4)}",
        **port_settings(ports),
    }
    if handler_concurrency:
        settings["pipeline_concurrency"] = str(handler_concurrency)
    env = clean_env(root, **settings)
    services = [redis]
    for command, role in REDIS_SERVICES[:1] if alone else REDIS_SERVICES:
        service = start(stack, f"pipeline {command}", [*LATLAB, "pipeline", command], env, root)
        wait_ports(service, [ports[role]])
        services.append(service)
    mode, writer = (RECEIVER, None) if alone else (REDIS, ports["writer"])
    return Pipeline(mode, tuple(services), ports["receiver"], writer, root)


# --- counters and CPU -------------------------------------------------------------------


class StatsClient:
    """``GET /stats`` of one service over one kept-alive connection."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._conn: http.client.HTTPConnection | None = None

    def get(self) -> dict[str, Any]:
        for attempt in range(2):  # a kept-alive connection the server closed: once more
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
                self._conn.request("GET", "/stats")
                stats: dict[str, Any] = json.loads(self._conn.getresponse().read())
                return stats
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class Counts:
    acked: int  # answered "Ok" by the receiver (its GET /stats "received")
    receipts: int  # lines of 2.txt: durable receipts, answered or not
    written: int  # lines of 1.txt


@dataclass(frozen=True)
class Sample:
    at_s: float  # time.monotonic()
    counts: Counts


class Counters:
    """The receiver's and the writer's counters; without a writer, every acknowledged
    request counts as written (nothing is waited for)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._receiver = StatsClient(pipeline.receiver_port)
        port = pipeline.writer_port
        self._writer = StatsClient(port) if port is not None else None

    def now(self) -> Sample:
        acked = int(self._receiver.get()["received"])
        if self._writer is None:
            return Sample(time.monotonic(), Counts(acked, acked, acked))
        writer = self._writer.get()
        counts = Counts(acked, int(writer["receipts_written"]), int(writer["results_written"]))
        return Sample(time.monotonic(), counts)

    def close(self) -> None:
        self._receiver.close()
        if self._writer is not None:
            self._writer.close()


@dataclass(frozen=True)
class Cpu:
    services: dict[str, float]  # share of one core, per service process
    generator: float  # share of one core: the send or load process, start-up included
    others: float  # share of all cores that processes not started here used


class CpuWatch:
    """CPU time of the services, the generator (a child that has been reaped) and the rest
    of the machine from ``__init__`` to :meth:`done`."""

    def __init__(self, services: Sequence[Service]) -> None:
        self._services = services
        self._service_s = [service.cpu_s() for service in services]
        self._children_s = children_cpu_s()
        self._ours_s = self._our_cpu_s()
        self._busy_s = machine_busy_s()
        self._wall_s = time.monotonic()

    def _our_cpu_s(self) -> float:
        mine = resource.getrusage(resource.RUSAGE_SELF)
        services_s = sum(service.cpu_s() for service in self._services)
        return mine.ru_utime + mine.ru_stime + children_cpu_s() + services_s

    def done(self) -> Cpu:
        wall_s = time.monotonic() - self._wall_s
        others_s = machine_busy_s() - self._busy_s - (self._our_cpu_s() - self._ours_s)
        shares = {
            service.name: (service.cpu_s() - before_s) / wall_s
            for service, before_s in zip(self._services, self._service_s, strict=True)
        }
        generator = (children_cpu_s() - self._children_s) / wall_s
        return Cpu(shares, generator, max(0.0, others_s / (wall_s * (os.cpu_count() or 1))))


def children_cpu_s() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return children.ru_utime + children.ru_stime


def follow(counters: Counters, generator: subprocess.Popen[bytes]) -> list[Sample]:
    """Samples every POLL_S until ``generator`` has exited and 1.txt holds every receipt, or
    until no counter moved for STALL_S (the last sample then shows how far it got)."""
    samples = [counters.now()]
    moved_s = samples[0].at_s
    while True:
        time.sleep(POLL_S)
        sample = counters.now()
        if sample.counts != samples[-1].counts:
            moved_s = sample.at_s
        samples.append(sample)
        if generator.poll() is not None and settled(samples):
            return samples
        if sample.at_s - moved_s > STALL_S:
            stop(generator)
            return samples


def settled(samples: Sequence[Sample]) -> bool:
    """1.txt holds every receipt, 2.txt every acknowledged request, and nothing moved for
    SETTLE_SAMPLES polls (a receipt whose client hung up is durable, so still written)."""
    last = samples[-1].counts
    base = samples[0].counts
    caught_up = last.written == last.receipts and last.receipts - base.receipts >= acked(samples)
    recent = samples[-SETTLE_SAMPLES:]
    return caught_up and len(recent) == SETTLE_SAMPLES and len({s.counts for s in recent}) == 1


def acked(samples: Sequence[Sample]) -> int:
    """Requests the receiver answered between the first and the last sample."""
    return samples[-1].counts.acked - samples[0].counts.acked


def receipts(samples: Sequence[Sample]) -> int:
    """Receipts made durable between the first and the last sample."""
    return samples[-1].counts.receipts - samples[0].counts.receipts


def first_at(samples: Sequence[Sample], *, acked: int = -1, written: int = -1) -> float:
    """When the first sample with ``acked`` answered (or ``written`` lines of 1.txt) was
    taken; the last sample's time if none reached it."""
    for sample in samples:
        if 0 <= acked <= sample.counts.acked or 0 <= written <= sample.counts.written:
            return sample.at_s
    return samples[-1].at_s


def start_of(samples: Sequence[Sample]) -> float:
    """The last sample before the first acknowledgement of the phase."""
    base = samples[0].counts.acked
    before = [sample.at_s for sample in samples if sample.counts.acked == base]
    return before[-1] if len(before) < len(samples) else samples[0].at_s


def all_written(samples: Sequence[Sample]) -> bool:
    last = samples[-1].counts
    return last.written == last.receipts and receipts(samples) >= acked(samples)


# --- phases -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    requests: int
    rate: float
    seconds: float
    connections: int
    redis_handler_concurrency: int
    settings: tuple[tuple[str, str], ...] = ()  # --set: LatLab settings of every service


@dataclass(frozen=True)
class Throughput:
    acked: int
    errors: int
    ack_p50_ms: float
    ack_p99_ms: float
    acked_rps: float
    written_rps: float | None  # None: 1.txt stalled before holding every request
    written_s: float | None  # from the start until 1.txt held every request
    cpu: Cpu


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, figures: dict[str, Any] | None) -> Latency:
        figures = figures or {}
        return cls(*(float(figures.get(name) or 0.0) for name in ("p50", "p99", "max")))


@dataclass(frozen=True)
class RateRun:
    requests: int  # answered, per latlab load
    errors: int
    durable: int  # receipts made: answered, or in flight when the load stopped
    late_sends: int
    missed_sends: int
    service: Latency
    corrected: Latency
    drain_s: float | None  # last ack to last line of 1.txt; None: it stalled
    cpu: Cpu


@dataclass(frozen=True)
class ModeResult:
    mode: str
    throughput: Throughput
    rate_run: RateRun
    lines: tuple[int, int] | None  # 2.txt and 1.txt after their header; None: no writer
    final: Counts  # the services' counters at the end of the mode


def launch(command: list[str], root: Path) -> subprocess.Popen[bytes]:
    env = clean_env(root)
    return subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], what: str) -> bytes:
    stdout, _ = process.communicate(timeout=60)
    if process.returncode not in (0, 1):  # 1: some requests failed; counted, not fatal
        raise RuntimeError(f"{what} exited with {process.returncode}")
    return stdout


def measure_throughput(pipeline: Pipeline, scale: Scale) -> Throughput:
    command = [*LATLAB, "pipeline", "send", "-c", str(scale.connections)]
    command += ["-n", str(scale.requests), "--delay-range", "0"]
    command += ["--server-url", pipeline.receiver_url]
    counters = Counters(pipeline)
    watch = CpuWatch(pipeline.services)
    send = launch(command, pipeline.root)
    try:
        samples = follow(counters, send)
        result = json.loads(finish(send, "latlab pipeline send").splitlines()[-1])
    finally:
        stop(send)
        counters.close()
    cpu = watch.done()
    base = samples[0].counts
    sent_acked, lines = int(result["acked"]), receipts(samples)
    started_s = start_of(samples)
    acked_s = first_at(samples, acked=base.acked + sent_acked) - started_s
    written_s = first_at(samples, written=base.written + lines) - started_s
    done = all_written(samples)
    return Throughput(
        acked=sent_acked,
        errors=int(result["errors"]),
        ack_p50_ms=float(result["ack_latency_ms"]["p50"] or 0.0),
        ack_p99_ms=float(result["ack_latency_ms"]["p99"] or 0.0),
        acked_rps=sent_acked / acked_s if acked_s > 0 else 0.0,
        written_rps=lines / written_s if done and written_s > 0 else None,
        written_s=written_s if done else None,
        cpu=cpu,
    )


def load_command(pipeline: Pipeline, scale: Scale, json_path: Path) -> list[str]:
    body = json.dumps({"request": {"id": str(uuid.uuid4()), "delay": 0}})
    command = [*LATLAB, "load", "-m", "POST", "-H", "Content-Type: application/json"]
    command += ["--body", body, "--rate", f"{scale.rate:g}", "-d", f"{scale.seconds:g}s"]
    command += ["-c", str(scale.connections), "--workers", "1", "--json", str(json_path)]
    return [*command, "--quiet", f"{pipeline.receiver_url}/handler"]


def measure_rate(pipeline: Pipeline, scale: Scale) -> RateRun:
    json_path = pipeline.root / "load.json"
    counters = Counters(pipeline)
    watch = CpuWatch(pipeline.services)
    load = launch(load_command(pipeline, scale, json_path), pipeline.root)
    try:
        samples = follow(counters, load)
        finish(load, "latlab load")
    finally:
        stop(load)
        counters.close()
    cpu = watch.done()
    summary = json.loads(json_path.read_text())
    last_ack_s = first_at(samples, acked=samples[-1].counts.acked)
    drain_s = first_at(samples, written=samples[0].counts.written + receipts(samples))
    return RateRun(
        requests=int(summary["requests"]),
        errors=int(summary["errors"]),
        durable=receipts(samples),
        late_sends=int(summary["late_sends"] or 0),
        missed_sends=int(summary["missed_sends"] or 0),
        service=Latency.of(summary["latency_ms"]),
        corrected=Latency.of(summary["corrected_latency_ms"]),
        drain_s=max(0.0, drain_s - last_ack_s) if all_written(samples) else None,
        cpu=cpu,
    )


def lines_after_header(path: Path) -> int:
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b"")) - 1


def measure_mode(mode: str, scale: Scale) -> ModeResult:
    print(f"{mode}: starting", flush=True)
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="latlab-pipeline-")))
        if mode == EMBEDDED:
            pipeline = embedded_pipeline(stack, root, dict(scale.settings))
        else:
            concurrency = scale.redis_handler_concurrency
            pipeline = redis_pipeline(
                stack, root, concurrency, dict(scale.settings), alone=mode == RECEIVER
            )
        print(f"{mode}: throughput, {scale.requests:,} requests", flush=True)
        throughput = measure_throughput(pipeline, scale)
        print(f"{mode}: {scale.rate:,.0f} req/s for {scale.seconds:g} s", flush=True)
        rate_run = measure_rate(pipeline, scale)
        counters = Counters(pipeline)
        final = counters.now().counts
        counters.close()
        lines = None
        if pipeline.writer_port is not None:
            out = pipeline.out_dir
            lines = (lines_after_header(out / "2.txt"), lines_after_header(out / "1.txt"))
    return ModeResult(mode, throughput, rate_run, lines, final)


# --- report -----------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = " ".join(line.partition(":")[2].split())
                break
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return f"{os.cpu_count()} cores ({model}), load average {load} at the start"


def cpu_line(name: str, cpu: Cpu) -> str:
    shares = ", ".join(f"{service} {share:.0%}" for service, share in cpu.services.items())
    return f"  {name:10} cpu: {shares}, generator {cpu.generator:.0%}; others {cpu.others:.0%}"


def report_throughput(results: Sequence[ModeResult], scale: Scale) -> None:
    print(f"\nThroughput, delay 0: latlab pipeline send -c {scale.connections} -n")
    print(f"{scale.requests:,} --delay-range 0\n")
    head = f"{'mode':9} {'acked req/s':>11} {'written req/s':>13} {'all written':>11}"
    print(f"{head} {'ack p50 ms':>10} {'ack p99 ms':>10} {'errors':>6} {'others':>6}")
    for result in results:
        run = result.throughput
        written, after = "—", "—"
        if result.lines is not None:
            written = f"{run.written_rps:,.0f}" if run.written_rps is not None else "stalled"
            after = f"{run.written_s:.2f} s" if run.written_s is not None else "stalled"
        row = f"{result.mode:9} {run.acked_rps:>11,.0f} {written:>13} {after:>11}"
        figures = f"{ms(run.ack_p50_ms):>10} {ms(run.ack_p99_ms):>10} {run.errors:>6,}"
        print(f"{row} {figures} {run.cpu.others:>6.0%}")


def rate_row(result: ModeResult) -> str:
    run = result.rate_run
    durable = f"{run.durable:,}" if result.lines is not None else "—"
    row = f"{result.mode:9} {run.requests:>9,} {durable:>8} {run.errors:>6,}"
    row += f" {run.late_sends:>6,} {run.missed_sends:>7,}"
    for latency in (run.service, run.corrected):
        row += f" {ms(latency.p50_ms):>6} {ms(latency.p99_ms):>6} {ms(latency.max_ms):>6}"
    drain = "—"
    if result.lines is not None:
        drain = f"+{run.drain_s:.2f} s" if run.drain_s is not None else "stalled"
    return f"{row} {drain:>9} {run.cpu.others:>6.0%}"


def report_rate(results: Sequence[ModeResult], scale: Scale) -> None:
    print(f"\nAck latency at {scale.rate:,.0f} req/s for {scale.seconds:g} s: latlab load")
    print(f"--rate {scale.rate:g} -c {scale.connections} --workers 1 (ms; one request id")
    print("sent again and again: the receiver does not deduplicate)\n")
    head = f"{'mode':9} {'answered':>9} {'durable':>8} {'errors':>6} {'late':>6} {'missed':>7}"
    head += f" {'p50':>6} {'p99':>6} {'max':>6} {'c.p50':>6} {'c.p99':>6} {'c.max':>6}"
    print(f"{head} {'last line':>9} {'others':>6}")
    for result in results:
        print(rate_row(result))
    print("durable: receipts made (2.txt lines), those in flight when the load stopped included;")
    print("c.: corrected, from the intended send time; last line: 1.txt's last line after the")
    print("last acknowledgement; late: sent over 10 ms after its time; missed: never sent")


def report_goal(results: Sequence[ModeResult], scale: Scale) -> None:
    print()
    for result in results:
        run = result.rate_run
        worst = max(run.service.p99_ms, run.corrected.p99_ms)
        met = worst < GOAL_P99_MS and not run.errors and not run.missed_sends
        verdict = "met" if met else "NOT met"
        print(
            f"goal ack p99 < {GOAL_P99_MS:g} ms at {scale.rate:,.0f} req/s, {result.mode}: "
            f"{verdict} (p99 {ms(run.service.p99_ms)} ms, corrected {ms(run.corrected.p99_ms)} ms)"
        )


def report_checks(results: Sequence[ModeResult]) -> None:
    print()
    for result in results:
        final = result.final
        if result.lines is None:
            print(f"{result.mode}: Redis and the receiver alone; it answered {final.acked:,} Ok")
        else:
            in_2, in_1 = result.lines
            whole = in_2 == in_1 == final.receipts == final.written >= final.acked
            verdict = "every acknowledged request written" if whole else "NOT as expected"
            print(
                f"{result.mode}: 2.txt {in_2:,} lines, 1.txt {in_1:,}; the receiver "
                f"answered {final.acked:,} Ok: {verdict}"
            )
        print(cpu_line("throughput", result.throughput.cpu))
        print(cpu_line("rate run", result.rate_run.cpu))


def report(results: Sequence[ModeResult], scale: Scale, conditions: str) -> None:
    print(f"\n{conditions}")
    report_throughput(results, scale)
    report_rate(results, scale)
    report_goal(results, scale)
    report_checks(results)
    if any(max(r.throughput.cpu.others, r.rate_run.cpu.others) > 0.05 for r in results):
        print("others above 5 %: the machine was not quiet; the figures are understated")


# --- main -------------------------------------------------------------------------------


def parse_args() -> tuple[Scale, list[str]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 requests, 3 s rate run")
    parser.add_argument("--requests", type=int, help="throughput run (default 20,000)")
    parser.add_argument("--rate", type=float, default=5000.0, help="req/s of the rate run")
    parser.add_argument("--seconds", type=float, help="rate run (default 10, quick 3)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--modes", default=",".join(MODES), help="embedded,redis,receiver")
    parser.add_argument(
        "--redis-handler-concurrency",
        type=int,
        default=0,
        help="LATLAB_PIPELINE_CONCURRENCY of the Redis mode's handler (0: the default)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a LatLab setting for every service, e.g. pipeline_fsync=never (repeatable)",
    )
    args = parser.parse_args()
    settings = [tuple(item.split("=", 1)) for item in args.set]
    if any(len(pair) != 2 or not pair[0] for pair in settings):
        parser.error("--set: NAME=VALUE, e.g. pipeline_fsync=never")
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes: some of {', '.join(MODES)}")
    scale = Scale(
        requests=args.requests or (3_000 if args.quick else 20_000),
        rate=args.rate,
        seconds=args.seconds or (3.0 if args.quick else 10.0),
        connections=args.connections,
        redis_handler_concurrency=args.redis_handler_concurrency,
        settings=tuple((name.lower(), value) for name, value in settings),
    )
    return scale, modes


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so that every service and generator started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scale, modes = parse_args()
    if {REDIS, RECEIVER} & set(modes) and shutil.which("redis-server") is None:
        sys.exit("redis-server not found: apt-get install redis-server (make services does)")
    conditions = machine()
    try:
        results = [measure_mode(mode, scale) for mode in modes]
    except KeyboardInterrupt:
        sys.exit(130)  # everything started is stopped by now
    report(results, scale, conditions)


if __name__ == "__main__":
    main()
