"""The built-in targets of one process, assembled from settings.

``open_targets(settings)`` serves them in the calling process (``latlab serve``, and
``latlab targets`` with one worker); ``workers.py`` runs several such processes on one
port. Route table, first match wins:

    /api/latency   {"message": "pong"}                 (seed 000's probe target)
    /test          serialized work, FIFO               (seed 001)
    /delay?ms=     answer after a server-side delay    (calibration)
    /metrics       Prometheus text, not counted
    /status/{code} that status; /bytes/{n} n bytes     (calibration)
    anything else  the sum server                      (seed 003)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from pathlib import Path

from latlab.exporters.influx import InfluxStats, open_exporter
from latlab.serving.limits import ServerLimits, connection_cap, raise_fd_limit
from latlab.serving.routes import Router, route
from latlab.serving.server import GRACE_S, HttpServer
from latlab.serving.wire import Request, Response, json_response
from latlab.settings import Settings
from latlab.targets.calibration import BYTES_PREFIX, STATUS_PREFIX, Calibration, delay
from latlab.targets.counters import Cell, CountsTable, LocalCounts
from latlab.targets.metrics import MetricsPage
from latlab.targets.reporting import PeriodReporter
from latlab.targets.serial import SerialQueue, SerialWork
from latlab.targets.sum import sum_numbers
from latlab.targets.tickets import FileTickets, MemoryTickets, Tickets

# How often a worker copies its counts where the parent's reporter and the other workers read
# them (one process alone publishes when its own reporter or /metrics reads).
PUBLISH_S = 0.01


PONG = json_response(HTTPStatus.OK, {"message": "pong"})


def latency(_request: Request) -> Response:
    """``/api/latency``: what experiments probe (seed 000); constant, so it costs nothing."""
    return PONG


def build_router(work: SerialWork, metrics: MetricsPage) -> Router:
    calibration = Calibration()
    exact = {
        b"/api/latency": route(latency),
        b"/test": route(work.handle),
        b"/delay": route(delay),
        b"/metrics": route(metrics.handle),
    }
    prefixed = [
        (STATUS_PREFIX, route(calibration.status)),
        (BYTES_PREFIX, route(calibration.bytes)),
    ]
    return Router(exact, prefixed, route(sum_numbers, ("GET", "POST")))


class TargetsServer:
    """Routes, counters (``row`` of ``counts``) and the /test queue behind a listener."""

    def __init__(
        self,
        *,
        work_s: float,
        tickets: Tickets,
        counts: CountsTable,
        row: int = 0,
        limits: ServerLimits | None = None,
    ) -> None:
        self.counts = LocalCounts(counts.row(row))
        cells = self.counts.cells
        self.queue = SerialQueue(tickets, cells)
        metrics = MetricsPage(counts, self.counts.publish)
        router = build_router(SerialWork(self.queue, work_s), metrics)
        # The request counts are the first cells of the row (``counting.py``'s layout).
        self.http = HttpServer(router, cells, limits=limits)
        self._publisher: asyncio.TimerHandle | None = None

    async def listen(
        self, host: str, port: int, *, reuse_port: bool = False, publish_s: float | None = None
    ) -> asyncio.Server:
        """Start accepting on host:port (0 picks a free port); ``publish_s``: copy the counts
        to the shared table that often, for other processes."""
        server = await self.http.listen(host, port, reuse_port=reuse_port)
        if publish_s is not None:
            self._publish(publish_s)
        return server

    def _publish(self, every_s: float) -> None:
        self.counts.publish()
        loop = asyncio.get_running_loop()
        self._publisher = loop.call_later(every_s, self._publish, every_s)

    @property
    def port(self) -> int:
        return self.http.port

    async def close(self, grace_s: float = GRACE_S) -> None:
        """Stop accepting, let answers in flight finish (up to ``grace_s``; a /test in line
        may be cut short), release all."""
        await self.http.close(grace_s)
        await self.queue.close()
        if self._publisher is not None:
            self._publisher.cancel()
        self.counts.publish()  # the last answers, before the reporter's last look


def server_limits(settings: Settings) -> ServerLimits:
    """The targets' limits; call at start-up: it lifts this process's soft descriptor limit
    to the hard one, and the connection cap, unless set, is what it leaves to the targets."""
    fd_limit = raise_fd_limit()
    max_connections = settings.targets_max_connections or connection_cap(fd_limit)
    return ServerLimits(
        max_header_bytes=settings.targets_max_header_bytes,
        max_headers=settings.targets_max_headers,
        header_timeout_s=settings.targets_header_timeout_s,
        idle_timeout_s=settings.targets_idle_timeout_s,
        max_connections=max_connections,
    )


def open_tickets(settings: Settings) -> Tickets:
    """Redis when configured; else a ticket file when one is named; else this process only."""
    if settings.redis_url:
        from latlab.targets.redis_tickets import RedisTickets

        return RedisTickets(settings.redis_url, settings.redis_prefix)
    if settings.targets_lock_path:
        return FileTickets(Path(settings.targets_lock_path))
    return MemoryTickets()


def open_reporter(
    settings: Settings, counts: CountsTable, row: int, refresh: Callable[[], None] | None = None
) -> PeriodReporter | None:
    """The InfluxDB reporter, its own figures kept in ``row``; ``None`` without a URL.
    ``refresh`` brings the table up to date before each read (one process alone)."""
    cells = counts.row(row)

    def observe(stats: InfluxStats) -> None:
        cells[Cell.INFLUX_BACKLOG_POINTS] = stats.backlog_points
        cells[Cell.INFLUX_SENT_POINTS] = stats.sent_points
        cells[Cell.INFLUX_DROPPED_POINTS] = stats.dropped_points
        cells[Cell.INFLUX_ERRORS] = stats.errors

    # Retry at least once a period.
    retry_max_s = min(30.0, settings.targets_minute_s)
    exporter = open_exporter(settings, retry_max_s=retry_max_s, observer=observe)
    if exporter is None:
        return None
    return PeriodReporter(counts, exporter, settings.targets_minute_s, refresh)


@contextlib.asynccontextmanager
async def open_targets(settings: Settings) -> AsyncIterator[TargetsServer]:
    """The targets in this process, listening on the settings' host and port."""
    counts = CountsTable.in_memory(rows=2)  # row 0: this server; row 1: the reporter
    server = TargetsServer(
        work_s=settings.targets_work_s,
        tickets=open_tickets(settings),
        counts=counts,
        limits=server_limits(settings),
    )
    reporter = None
    try:
        reporter = open_reporter(settings, counts, row=1, refresh=server.counts.publish)
        if reporter is not None:
            reporter.start()
        await server.listen(settings.targets_host, settings.targets_port)
        yield server
    finally:
        await server.close()
        if reporter is not None:
            await reporter.close()  # after the server: the last answers are counted too
        counts.close()
