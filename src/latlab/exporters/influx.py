"""InfluxDB v1 line protocol over HTTP ``/write``, with a backlog bounded in points, and retries.

Batches of points (a reporting period, a commit's probe results) are queued without blocking
the caller; one task writes the oldest ones, at most ``max_points_per_write`` points a request,
and retries with backoff while InfluxDB is down or slow. A batch is removed only once written.
Writing one twice is harmless: a point with the same series and timestamp overwrites itself,
so a retry after an ambiguous failure (a timeout after the server wrote) does not count twice.
Past the backlog's bound (in points) the oldest batches are dropped and their points counted.
A batch InfluxDB refuses as malformed (400) is dropped and counted too: retried, it would
block everything behind it forever.

InfluxDB 2.x and 3.x take the same ``/write`` through their v1-compatible API with a token.
The HTTP client is the standard library's, in a worker thread: this is off the hot path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import logging
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from latlab.settings import Settings, check_influx_url

logger = logging.getLogger(__name__)

RETRY_MIN_S = 0.1
Observer = Callable[["InfluxStats"], None]  # told of every change of an exporter's figures


class InfluxError(Exception): ...


class DatabaseMissingError(InfluxError): ...


class RejectedError(InfluxError):
    """InfluxDB will never take these points (400: unparsable, a field of another type)."""


def escape_tag(value: str) -> str:
    """Line protocol: commas, equals signs and spaces in tag keys and values are escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@dataclass(frozen=True)
class InfluxConfig:
    url: str
    database: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        check_influx_url(self.url)

    @classmethod
    def from_settings(cls, settings: Settings) -> InfluxConfig | None:
        if not settings.influx_url:
            return None
        password, token = settings.influx_password, settings.influx_token
        return cls(
            url=settings.influx_url.rstrip("/"),
            database=settings.influx_database,
            username=settings.influx_username,
            password=password.get_secret_value() if password else None,
            token=token.get_secret_value() if token else None,
        )

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        elif self.username:
            pair = f"{self.username}:{self.password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers


class InfluxClient:
    """Blocking calls; run them in a thread. Proxies from the environment are not used."""

    def __init__(self, config: InfluxConfig) -> None:
        self._config = config
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _post(self, path: str, params: dict[str, str], body: bytes) -> tuple[int, bytes]:
        url = f"{self._config.url}{path}?{urlencode(params)}"
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in InfluxConfig
            url, data=body, headers=self._config.headers(), method="POST"
        )
        try:
            with self._opener.open(request, timeout=self._config.timeout_s) as response:
                return int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read()
        # URLError and timeouts are OSErrors; a server that speaks no HTTP (a TLS port, a
        # proxy's garbage) raises http.client's own errors.
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise InfluxError(f"InfluxDB at {self._config.url} unreachable: {exc}") from exc

    def create_database(self) -> bool:
        """CREATE DATABASE (a no-op if it exists); false if this user may not."""
        name = self._config.database.replace("\\", "\\\\").replace('"', '\\"')
        status, body = self._post("/query", {"q": f'CREATE DATABASE "{name}"'}, b"")
        if status >= 500:
            raise InfluxError(f"CREATE DATABASE: {status} {body[:200]!r}")
        return status < 300

    def write(self, lines: str) -> None:
        params = {"db": self._config.database, "precision": "ns"}
        status, body = self._post("/write", params, lines.encode())
        if status == 404:  # InfluxDB 1.x: "database not found"
            raise DatabaseMissingError(f"write: {body[:200]!r}")
        if status == 400:
            raise RejectedError(f"write: {body[:200]!r}")
        if status != 204:
            raise InfluxError(f"write: {status} {body[:200]!r}")


@dataclass
class InfluxStats:
    """In points; every point submitted is sent, dropped or still in the backlog."""

    backlog_points: int = 0
    sent_points: int = 0
    dropped_points: int = 0
    errors: int = 0  # failed write attempts


@dataclass(frozen=True, slots=True)
class _Batch:
    number: int  # increasing: what a write took is removed by number, drops meanwhile or not
    lines: str
    points: int


class InfluxExporter:
    """Queue batches with ``submit``; a task writes them, oldest first, until written."""

    def __init__(
        self,
        client: InfluxClient,
        *,
        max_backlog_points: int,
        retry_max_s: float = 30.0,
        max_points_per_write: int = 5000,
        observer: Observer | None = None,
    ) -> None:
        self._client = client
        self._backlog: deque[_Batch] = deque()
        self._max_backlog_points = max_backlog_points
        self._retry_max_s = retry_max_s
        self._max_per_write = max_points_per_write
        self._observer = observer
        self._last_number = 0
        self._pending = asyncio.Event()
        self._database_ready = self._failing = self._dropping = False
        self._task: asyncio.Task[None] | None = None
        self.stats = InfluxStats()

    def submit(self, lines: str, points: int) -> None:
        """Queue ``points`` points, one a line; never blocks."""
        if points > self._max_per_write or points > self._max_backlog_points:
            self._submit_split(lines.split("\n"))
        else:
            self._append(lines, points)
        self._pending.set()
        self._changed()

    def _submit_split(self, lines: list[str]) -> None:
        """A batch too large for one request, or for the whole backlog: in pieces."""
        excess = len(lines) - self._max_backlog_points
        if excess > 0:
            self._count_dropped(excess)
            lines = lines[excess:]
        for start in range(0, len(lines), self._max_per_write):
            piece = lines[start : start + self._max_per_write]
            self._append("\n".join(piece), len(piece))

    def _append(self, lines: str, points: int) -> None:
        while self._backlog and self.stats.backlog_points + points > self._max_backlog_points:
            dropped = self._backlog.popleft()
            self.stats.backlog_points -= dropped.points
            self._count_dropped(dropped.points)
        self._last_number += 1
        self._backlog.append(_Batch(self._last_number, lines, points))
        self.stats.backlog_points += points

    def _count_dropped(self, points: int) -> None:
        self.stats.dropped_points += points
        if not self._dropping:  # once per episode: a full backlog drops at every submit
            self._dropping = True
            bound = self._max_backlog_points
            logger.warning("InfluxDB backlog full (%d points): dropping the oldest", bound)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay_s = RETRY_MIN_S
        while True:
            await self._pending.wait()
            try:
                await self._send_oldest()
            except Exception as exc:  # whatever failed, the writer lives on and retries
                self.stats.errors += 1
                self._changed()
                log = logger.debug if self._failing else logger.warning
                self._failing = True
                log("InfluxDB write failed (%s); points kept for later", exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._retry_max_s)
                continue
            delay_s = RETRY_MIN_S
            if self._failing:
                self._failing = False
                logger.info("InfluxDB reachable again; backlog: %d", self.stats.backlog_points)

    def _oldest_request(self) -> tuple[str, int]:
        """The oldest batches that fit in one request (at least one), and the last's number."""
        texts: list[str] = []
        points = last_number = 0
        for batch in self._backlog:
            if texts and points + batch.points > self._max_per_write:
                break
            texts.append(batch.lines)
            points += batch.points
            last_number = batch.number
        return "\n".join(texts), last_number

    async def _send_oldest(self) -> None:
        body, last_number = self._oldest_request()
        if not self._database_ready:
            if not await asyncio.to_thread(self._client.create_database):
                logger.info("InfluxDB: may not create databases; writing to an existing one")
            self._database_ready = True
        try:
            await asyncio.to_thread(self._client.write, body)
        except DatabaseMissingError:
            self._database_ready = False  # dropped while we ran: create it again
            raise
        except RejectedError as exc:
            self.stats.errors += 1
            logger.error("InfluxDB refused points; dropping them: %s", exc)
            self.stats.dropped_points += self._remove_through(last_number)
        else:
            self.stats.sent_points += self._remove_through(last_number)
            self._dropping = False
        if not self._backlog:
            self._pending.clear()
        self._changed()

    def _remove_through(self, last_number: int) -> int:
        """Remove the batches a write took; their points (some may have been dropped since)."""
        points = 0
        while self._backlog and self._backlog[0].number <= last_number:
            points += self._backlog.popleft().points
        self.stats.backlog_points -= points
        return points

    def _changed(self) -> None:
        if self._observer is not None:
            self._observer(self.stats)

    async def close(self, flush_timeout_s: float = 3.0) -> None:
        """Stop, after one last try (bounded) to write what is queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            async with asyncio.timeout(flush_timeout_s):
                while self._backlog:
                    await self._send_oldest()
        except (InfluxError, TimeoutError) as exc:
            lost = self.stats.backlog_points
            logger.error("InfluxDB: %d points not written at shutdown (%s)", lost, exc)


def open_exporter(
    settings: Settings, *, retry_max_s: float = 30.0, observer: Observer | None = None
) -> InfluxExporter | None:
    """An exporter to the InfluxDB the settings name (not started); ``None`` without a URL."""
    config = InfluxConfig.from_settings(settings)
    if config is None:
        return None
    bound = settings.influx_backlog_points
    client = InfluxClient(config)
    return InfluxExporter(
        client, max_backlog_points=bound, retry_max_s=retry_max_s, observer=observer
    )
