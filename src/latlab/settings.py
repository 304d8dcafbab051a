"""One typed settings object; environment first (prefix ``LATLAB_``), passed in, never global."""

from __future__ import annotations

import ipaddress
import ssl
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Comma-separated in the environment (``a,b``), a list in code.
CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_influx_url(url: str) -> str:
    """``url`` if it is ``http(s)://host[:port][/path]``; raise ``ValueError`` if not."""
    parts = urlsplit(url)
    try:
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise ValueError(
            f"InfluxDB URL must be http(s)://host[:port], e.g. http://127.0.0.1:8086, not {shown!r}"
        )
    return url


class Settings(BaseSettings):
    """Everything LatLab can be configured with. Every field is also ``LATLAB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LATLAB_", extra="ignore")

    host: str = Field("127.0.0.1", description="Control API bind address.")
    port: int = Field(8000, ge=0, le=65535, description="Control API port.")
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token every API route asks for (health and docs excepted); "
        "unset = no token, loopback clients only.",
    )
    insecure: bool = Field(
        False, description="Allow serving a non-loopback address without an API token."
    )
    api_max_connections: int | None = Field(
        None,
        ge=1,
        description="Most open connections on the control API (unset: a share of the "
        "file-descriptor limit; past it new connections are closed at once).",
    )
    allowed_hosts: CommaList = Field(
        default_factory=list,
        description="Host header values accepted besides loopback names and addresses "
        "(comma-separated), e.g. latlab.example.com.",
    )
    targets_deny: CommaList = Field(
        default_factory=list,
        description="CIDRs LatLab never sends traffic to (comma-separated); beats an allow.",
    )
    targets_allow: CommaList = Field(
        default_factory=list,
        description="CIDRs allowed despite the built-in denies; non-empty = only these.",
    )
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body (413 past it)."
    )
    max_bulk_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest body of the bulk-create route (up to 10,000 experiments).",
    )
    max_running_jobs: int = Field(
        20_000, ge=1, description="Most experiments running at once (429 past it)."
    )
    max_bots: int = Field(200_000, ge=1, description="Most bots running at once (429 past it).")
    max_results: int = Field(
        10_000_000, ge=1, description="Largest probe count of one experiment (422 past it)."
    )
    min_interval_s: float = Field(
        0.001, gt=0, description="Shortest interval between probes (422 below it)."
    )
    load_max_connections: int = Field(
        10_000, ge=1, description="Most connections of one load run (422 / exit 2 past it)."
    )
    load_max_rate: float = Field(
        1_000_000, gt=0, description="Highest request rate of one load run, requests/s."
    )
    load_max_duration_s: float = Field(
        86_400, gt=0, description="Longest load run, seconds (a request count is not bounded)."
    )
    load_max_workers: int = Field(
        64, ge=1, le=1024, description="Most worker processes of one load run."
    )
    max_running_load_runs: int = Field(
        4, ge=1, description="Most load runs running at once on this API (429 past it)."
    )
    create_rate_per_min: int = Field(
        6_000,
        ge=1,
        description="Create requests per minute per token, else per client address (429 past "
        "it); a bulk create counts once.",
    )
    startup_timeout_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description="How long start-up waits for the store and Redis before exit code 3.",
    )
    storage_url: str = Field(
        "sqlite+aiosqlite:///./latlab.db",
        description="Store: sqlite+aiosqlite://, postgresql+asyncpg://, mongodb://, memory://",
    )
    targets_host: str = Field("127.0.0.1", description="Built-in targets bind address.")
    targets_port: int = Field(8008, ge=0, le=65535, description="Built-in targets port.")
    targets_enabled: bool = Field(True, description="`latlab serve` also serves the targets.")
    targets_workers: int = Field(1, ge=1, le=64, description="Target server processes.")
    targets_work_s: float = Field(
        3.0, ge=0, le=600, description="Duration of the serialized work behind GET /test."
    )
    targets_minute_s: float = Field(
        60.0, gt=0, description="Length of a request-count period (shortened in tests)."
    )
    targets_max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request head on the targets (431 past it)."
    )
    targets_max_headers: int = Field(
        100, ge=1, description="Most request headers on the targets (431 past it)."
    )
    targets_idle_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="Targets close a keep-alive connection idle this long."
    )
    targets_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="The targets and the control API close a connection whose request head "
        "takes longer (slowloris).",
    )
    targets_max_connections: int | None = Field(
        None,
        ge=1,
        description="Most open connections on the targets (unset: the file-descriptor limit "
        "less a reserve for the API and the store).",
    )
    targets_lock_path: str | None = Field(
        None,
        description="Ticket file that orders /test across processes "
        "(unset: in-process with one worker, a temp file with --workers N).",
    )
    influx_url: str | None = Field(
        None, description="InfluxDB base URL, e.g. http://127.0.0.1:8086; unset = no export."
    )
    influx_database: str = Field("math_server", description="InfluxDB database (v1 API).")
    influx_username: str | None = Field(None, description="InfluxDB user.")
    influx_password: SecretStr | None = Field(None, description="InfluxDB password.")
    influx_token: SecretStr | None = Field(
        None, description="Token for InfluxDB 2.x/3.x (v1-compatible /write endpoint)."
    )
    influx_backlog_points: int = Field(
        1_000_000,
        ge=1,
        description="Most unsent InfluxDB points kept while it is away; past it the oldest "
        "are dropped and counted.",
    )
    metrics_max_experiments: int = Field(
        1_000,
        ge=1,
        le=100_000,
        description="Experiments with their own /metrics series; the rest are summed "
        'under experiment="other".',
    )
    events_buffer: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Events buffered per live-feed client; past it the client is dropped "
        "(event: overflow) and may reconnect with Last-Event-ID.",
    )
    events_heartbeat_s: float = Field(
        15.0, gt=0, le=3600, description="Seconds between heartbeat comments on live feeds."
    )
    stats_flush_results: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Results between two stored histogram updates of an experiment; "
        "/stats recounts at most this many from the results.",
    )
    bots_tick_s: float = Field(1.0, ge=0.001, le=3600, description="Seconds between bot ticks.")
    bots_log_ticks: bool = Field(
        True, description="Log one line per bot per tick (switch off for large fleets)."
    )
    redis_prefix: str = Field("latlab", min_length=1, description="Prefix of LatLab's Redis keys.")
    redis_url: str | None = Field(
        None, description="Redis, e.g. redis://127.0.0.1:6379/0: shared state across processes."
    )
    pipeline_host: str = Field("127.0.0.1", description="Bind address of the pipeline services.")
    pipeline_client_port: int = Field(5000, ge=0, le=65535, description="Pipeline client port.")
    pipeline_receiver_port: int = Field(5001, ge=0, le=65535, description="Receiver port.")
    pipeline_handler_port: int = Field(5002, ge=0, le=65535, description="Handler port.")
    pipeline_writer_port: int = Field(5003, ge=0, le=65535, description="Writer port.")
    pipeline_receiver_url: str = Field(
        "http://127.0.0.1:5001", description="Where the client sends (the receiver)."
    )
    pipeline_handler_url: str = Field(
        "http://127.0.0.1:5002", description="The handler, for the client's status."
    )
    pipeline_writer_url: str = Field(
        "http://127.0.0.1:5003", description="The writer, for the client's status."
    )
    pipeline_out_dir: str = Field("pipeline-out", description="Where the writer's files go.")
    pipeline_fsync: Literal["always", "batch", "never"] = Field(
        "batch", description="When the writer fsyncs its files (batch: within 0.2 s)."
    )
    pipeline_concurrency: int = Field(
        10_000, ge=1, description="Most requests the handler processes at once."
    )
    pipeline_max_tries: int = Field(
        5, ge=1, le=1000, description="Deliveries of a request before it is written as ERROR."
    )
    pipeline_lease_s: float = Field(
        30.0, gt=0, description="Redis: work idle this long is taken over from a dead handler."
    )
    pipeline_consumer: str = Field(
        "handler-1", min_length=1, max_length=100, description="Redis consumer name of a handler."
    )
    pipeline_max_connections: int = Field(
        1000, ge=1, description="Most connection_count a client call may ask for."
    )
    pipeline_max_requests: int = Field(
        1_000_000, ge=1, description="Most connection_value a client call may ask for."
    )
    pipeline_max_delay_s: float = Field(
        3600.0, ge=0, description="Longest delay a request may carry (delay_range's bound)."
    )
    probe_ca_file: str | None = Field(
        None, description="CA bundle to verify https targets with (default: the system's)."
    )
    probe_timeout_s: float = Field(10.0, gt=0, description="Default timeout of one probe.")
    write_batch_size: int = Field(500, ge=1, description="Most results written in one batch.")
    write_batch_delay_s: float = Field(
        0.002, ge=0, description="How long the writer waits to gather a batch."
    )
    freeze_gc: bool = Field(
        True,
        description="Move start-up objects out of the cyclic GC (API and pipeline services): "
        "short GC pauses, which delay probes and acknowledgements.",
    )

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"

    @field_validator("allowed_hosts", "targets_deny", "targets_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)

    @field_validator("targets_deny", "targets_allow")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(item, strict=False)) for item in value]

    # URLs and files are checked here, so a mistake is one line at start-up (cli/startup.py)
    # rather than a traceback from whatever opens them later. The checks import lazily.
    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        from latlab.coordination import check_redis_url

        return None if value is None else check_redis_url(value)

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str | None) -> str | None:
        return check_influx_url(value) if value else value

    @field_validator("probe_ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        if value is not None:
            _check_ca_file(value)
        return value


def _check_ca_file(path: str) -> None:
    """Load the bundle as the probes will (~1 ms for a small one), so a bad path fails now."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"no PEM CA certificate could be read from it ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror or exc})") from None
