"""InfluxDB v1 line protocol over HTTP ``/write``, with a bounded backlog and retries.

Batches (one per reporting period) are queued without blocking the caller; one task
writes the oldest ones in a single request and retries with backoff while InfluxDB is
down or slow. A batch is removed only once written. Writing one twice is harmless: a point
with the same series and timestamp overwrites itself in InfluxDB, so a retry after an
ambiguous failure (a timeout after the server wrote) does not count twice. The backlog is
bounded: when full, the oldest batch is dropped and counted.

InfluxDB 2.x and 3.x take the same ``/write`` through their v1-compatible API with a token.
The HTTP client is the standard library's, in a worker thread: this is off the hot path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from latlab.settings import Settings

logger = logging.getLogger(__name__)

RETRY_MIN_S = 0.1


class InfluxError(Exception):
    pass


class DatabaseMissingError(InfluxError):
    pass


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
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"InfluxDB URL must be http(s)://, not {self.url!r}")

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
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
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
        if status != 204:
            raise InfluxError(f"write: {status} {body[:200]!r}")


@dataclass
class InfluxStats:
    backlog: int = 0
    sent: int = 0
    dropped: int = 0
    errors: int = 0


class InfluxExporter:
    """Queue batches with ``submit``; a task writes them, oldest first, until written."""

    def __init__(
        self,
        client: InfluxClient,
        *,
        max_backlog: int,
        retry_max_s: float = 30.0,
        max_batches_per_write: int = 1000,
        observer: Callable[[InfluxStats], None] | None = None,
    ) -> None:
        self._client = client
        self._backlog: deque[tuple[int, str]] = deque()  # (sequence number, lines)
        self._max_backlog = max_backlog
        self._retry_max_s = retry_max_s
        self._max_per_write = max_batches_per_write
        self._observer = observer
        self._last_seq = 0
        self._pending = asyncio.Event()
        self._database_ready = False
        self._failing = False
        self._task: asyncio.Task[None] | None = None
        self.stats = InfluxStats()

    def submit(self, lines: str) -> None:
        """Queue one batch; never blocks. A full backlog drops its oldest batch."""
        if len(self._backlog) >= self._max_backlog:
            self._backlog.popleft()
            self.stats.dropped += 1
            logger.warning("InfluxDB backlog full (%d): dropped the oldest", self._max_backlog)
        self._last_seq += 1
        self._backlog.append((self._last_seq, lines))
        self._pending.set()
        self._changed()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        delay_s = RETRY_MIN_S
        while True:
            await self._pending.wait()
            try:
                await self._send_oldest()
            except InfluxError as exc:
                self.stats.errors += 1
                self._changed()
                self._note_failure(exc)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, self._retry_max_s)
                continue
            delay_s = RETRY_MIN_S
            if self._failing:
                self._failing = False
                logger.info("InfluxDB reachable again; backlog: %d", len(self._backlog))

    async def _send_oldest(self) -> None:
        batch = list(itertools.islice(self._backlog, self._max_per_write))
        if not self._database_ready:
            if not await asyncio.to_thread(self._client.create_database):
                logger.info("InfluxDB: may not create databases; writing to an existing one")
            self._database_ready = True
        try:
            await asyncio.to_thread(self._client.write, "\n".join(text for _, text in batch))
        except DatabaseMissingError:
            self._database_ready = False  # dropped while we ran: create it again
            raise
        # Batches dropped from a full backlog meanwhile were among these; remove by number.
        while self._backlog and self._backlog[0][0] <= batch[-1][0]:
            self._backlog.popleft()
        self.stats.sent += len(batch)
        if not self._backlog:
            self._pending.clear()
        self._changed()

    def _note_failure(self, exc: InfluxError) -> None:
        log = logger.debug if self._failing else logger.warning
        self._failing = True
        log("InfluxDB write failed (%s); %d periods kept for later", exc, len(self._backlog))

    def _changed(self) -> None:
        self.stats.backlog = len(self._backlog)
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
            lost = len(self._backlog)
            logger.error("InfluxDB: %d periods not written at shutdown (%s)", lost, exc)
