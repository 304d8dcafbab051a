"""Private PostgreSQL and Redis servers that an outage test starts, stops and starts again.

The shared services on 5432/6379 serve every other test and must never go down; an outage test
takes its own server on a free loopback port instead::

    with OwnPostgres() as pg, OwnRedis() as rd:
        app = make_app(pg.url, rd.url)
        async with pg.outage():  # stopped: connections are refused
            ...
        # started again on the same port; the PostgreSQL data is still there

Both are context managers that always stop the server and remove its temp dir, even when the
test fails. ``stop``/``start`` block (about 0.1 s each; a new PostgreSQL cluster takes about
0.7 s, the first of a session 2 s); inside a running event loop use ``astop``/``astart``/
``outage`` so that the code under test keeps running meanwhile.

A missing binary fails the tests that need it, with the package to install (``make test``
installs them), as every other service of the suite does: nothing skips.
"""

from __future__ import annotations

import abc
import asyncio
import atexit
import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal, NoReturn, Self

import pytest

from services import free_port, wait_for_port

HOST = "127.0.0.1"
POSTGRES_GLOB = "/usr/lib/postgresql/*/bin"  # Debian keeps the server binaries off PATH
COMMAND_TIMEOUT_S = 60.0
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10.0
LOG_TAIL_CHARS = 2000

# Appended to postgresql.conf. Speed over durability: a test cluster lives for seconds and a
# crash of the machine loses nothing of value. The port is in the file so that every start
# uses the same one.
POSTGRES_CONF = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{socket_dir}'
fsync = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
"""


def missing(what: str, package: str) -> NoReturn:
    """Fail, naming what to install: a suite that skips would hide untested outages."""
    message = (
        f"{what} not found: apt-get install {package} (scripts/test-services.sh); "
        "outage tests start their own private server"
    )
    pytest.fail(message, pytrace=False)


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def postgres_bin_dir() -> Path:
    """The newest PostgreSQL server bin dir (initdb, pg_ctl, createdb)."""
    found = [d for d in Path("/").glob(POSTGRES_GLOB.lstrip("/")) if (d / "initdb").exists()]
    if found:
        return max(found, key=_version_key)
    initdb = shutil.which("initdb")  # other distributions put them on PATH
    if initdb is None:
        missing("PostgreSQL server binaries (initdb, pg_ctl)", "postgresql")
    return Path(initdb).parent


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        missing("redis-server", "redis-server")
    return found


def require_outage_binaries() -> None:
    """What the session-scoped check calls: both servers can be started here."""
    postgres_bin_dir()
    _postgres_user_prefix()
    redis_server_binary()


def _postgres_user_prefix() -> list[str]:
    """How to run a server binary: initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return []  # a developer or CI user runs the cluster as themselves
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        missing("the postgres OS user (needed to run PostgreSQL as root)", "postgresql")
    return ["runuser", "-u", "postgres", "--"]


def _give_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(command: list[str], cwd: Path) -> None:
    # cwd: runuser keeps ours, and postgres must be able to enter it (not so for /root).
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-LOG_TAIL_CHARS:]
        raise RuntimeError(f"{' '.join(command)} exited with {result.returncode}:\n{output}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL_CHARS:] if log.exists() else "(no log)"


_template_lock = threading.Lock()
_template: Path | None = None


def _template_data_dir(bin_dir: Path) -> Path:
    """A pristine initdb output, made once per test session: copying it is several times faster.

    Removed when the interpreter exits; the clusters own copies of it.
    """
    global _template  # noqa: PLW0603 - one per process is the point
    with _template_lock:
        if _template is None:
            root = Path(tempfile.mkdtemp(prefix="latlab-pg-template-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            _give_to_postgres(root)
            command = [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", "postgres"]
            command += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
            command += ["--no-sync", "--no-instructions"]  # --no-sync: fsync is off anyway
            _run([*_postgres_user_prefix(), *command], cwd=root)
            _template = root / "data"
        return _template


class OwnServer(abc.ABC):
    """A server of one test that can go down and come back on the same port."""

    port: int

    @property
    @abc.abstractmethod
    def running(self) -> bool: ...

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Stop for good and remove what it left on disk."""

    @abc.abstractmethod
    def _prepare(self) -> None:
        """Find the binaries and lay out the data, before the first start."""

    def __enter__(self) -> Self:
        try:
            self._prepare()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ensure_running(self) -> None:
        """Start unless running: for a server shared by a module, after a test that failed
        during an outage."""
        if not self.running:
            self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    @asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """Down for the body of the ``async with``, then up again (also if the body raises)."""
        await self.astop()
        try:
            yield
        finally:
            await self.astart()


class OwnPostgres(OwnServer):
    """A private PostgreSQL cluster: initdb in a temp dir, ``pg_ctl`` on a free loopback port.

    Trust auth for everyone; superuser ``postgres``; no TCP listener but 127.0.0.1.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="latlab-pg-"))
        self.data_dir = self.root / "data"
        self.log = self.root / "postgres.log"
        self._bin = Path()
        self._as_postgres: list[str] = []

    @property
    def dsn(self) -> str:
        """For asyncpg itself."""
        return self.dsn_for("postgres")

    @property
    def url(self) -> str:
        """For LatLab (SQLAlchemy style)."""
        return self.url_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def url_for(self, database: str) -> str:
        return self.dsn_for(database).replace("postgresql://", "postgresql+asyncpg://", 1)

    def _prepare(self) -> None:
        self._bin = postgres_bin_dir()
        self._as_postgres = _postgres_user_prefix()
        self._initdb()

    def _initdb(self) -> None:
        _give_to_postgres(self.root)
        # cp -a keeps the 0700 mode and the owner that postgres insists on for its data dir.
        command = ["cp", "-a", str(_template_data_dir(self._bin)), str(self.data_dir)]
        _run([*self._as_postgres, *command], cwd=self.root)
        settings = POSTGRES_CONF.format(host=HOST, port=self.port, socket_dir=self.root)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def _pg_ctl(self, *args: str) -> None:
        command = [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), *args]
        try:
            _run([*self._as_postgres, *command], cwd=self.root)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n--- {self.log}:\n{_tail(self.log)}") from None

    @property
    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def start(self) -> None:
        """Start on the same port and data; returns once it accepts connections."""
        # -w: pg_ctl waits until the server accepts connections (after any crash recovery).
        self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log))

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Down with the port closed: new connections are refused, open ones are cut.

        ``fast`` rolls back open transactions and checkpoints; ``immediate`` is a crash (the
        next start recovers from WAL; committed data survives either way).
        """
        self._pg_ctl("stop", "-w", "-m", mode)

    def create_database(self, name: str) -> str:
        """A new empty database in this cluster; its URL."""
        command = [str(self._bin / "createdb"), "-h", HOST, "-p", str(self.port)]
        _run([*command, "-U", "postgres", name], cwd=self.root)
        return self.url_for(name)

    def close(self) -> None:
        """Stop if running and remove the temp dir; safe to call more than once."""
        if self.running:
            # Still remove what we can if this fails: the test's own error matters more.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.stop("immediate")  # nothing in the cluster is worth a checkpoint now
        # ignore_errors: raising here would hide the exception that the test raised.
        shutil.rmtree(self.root, ignore_errors=True)


class OwnRedis(OwnServer):
    """A private ``redis-server`` on a free loopback port, without any persistence unless
    ``appendonly``: then every write is fsynced to an append-only file in its dir before
    Redis answers, and a start after a stop (or a :meth:`kill`) loads it again."""

    def __init__(
        self, appendonly: bool = False, password: str | None = None, tls: bool = False
    ) -> None:
        self.appendonly = appendonly
        self.password = password
        self.tls = tls  # TLS only (no plain port), its certificate made for this server
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="latlab-redis-"))
        self.certificate = self.root / "server.crt"  # self-signed: its own CA
        credentials = "" if password is None else f":{password}@"
        scheme = "rediss" if tls else "redis"
        self.url = f"{scheme}://{credentials}{HOST}:{self.port}/0"
        if tls:
            self.url += f"?ssl_ca_certs={self.certificate}&ssl_cert_reqs=required"
        self.log = self.root / "redis.log"
        self._binary = ""
        self._process: subprocess.Popen[bytes] | None = None

    def _prepare(self) -> None:
        self._binary = redis_server_binary()
        if self.tls:
            self._make_certificate()

    def _make_certificate(self) -> None:
        """A key and a self-signed certificate for 127.0.0.1 (a day's), with openssl."""
        command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        command += ["-keyout", str(self.root / "server.key"), "-out", str(self.certificate)]
        command += ["-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}"]
        subprocess.run(command, check=True, capture_output=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        command = [self._binary, "--port", str(self.port), "--bind", HOST]
        if self.tls:
            command = [self._binary, "--port", "0", "--tls-port", str(self.port), "--bind", HOST]
            command += ["--tls-cert-file", str(self.certificate)]
            command += ["--tls-key-file", str(self.root / "server.key")]
            command += ["--tls-ca-cert-file", str(self.certificate), "--tls-auth-clients", "no"]
        # --dir: a dump (none expected with --save "") must not land in the cwd of the tests.
        command += ["--save", "", "--dir", str(self.root)]
        if self.appendonly:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        if self.password is not None:
            command += ["--requirepass", self.password]
        return [*command, "--daemonize", "no", "--loglevel", "warning"]

    def start(self) -> None:
        """Start on the same port (empty unless ``appendonly``); returns once it serves."""
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(self._command(), stdout=log, stderr=log)
        try:
            wait_for_port(HOST, self.port, START_TIMEOUT_S, self._process)
            if self.appendonly:  # it listens while loading the file, answering LOADING
                self._wait_loaded()
        except RuntimeError as exc:
            self._kill()
            raise RuntimeError(f"{exc}\n--- {self.log}:\n{_tail(self.log)}") from None

    def stop(self) -> None:
        """Down with the port closed (SIGTERM: without persistence Redis exits at once)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
        self._process = None

    def _wait_loaded(self) -> None:
        import redis

        client = redis.Redis(HOST, self.port, password=self.password, socket_timeout=STOP_TIMEOUT_S)
        deadline_s = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.BusyLoadingError:
                    if time.monotonic() > deadline_s:
                        raise RuntimeError("redis-server still loading its data") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, a crash: only what was fsynced survives (with ``appendonly``, every
        acknowledged write); :meth:`start` brings it up again on the same port and dir."""
        self._kill()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        """Stop if running and remove the temp dir; safe to call more than once."""
        self._kill()  # no need for a clean exit: there is nothing to save
        shutil.rmtree(self.root, ignore_errors=True)
