"""Experiments: a probe job measures ``count`` GETs against one URL, ``interval_s`` apart."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
import socket
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from latlab.exporters.base import ProbeTags
from latlab.jobs.kinds.probe_stats import FLUSH_RESULTS, StatsKeeper
from latlab.jobs.runner import KindRunner, RunContext, Started
from latlab.jobs.schedule import SlotSchedule
from latlab.jobs.supervise import until_stored
from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget
from latlab.measure.policy import TargetPolicy
from latlab.settings import Settings
from latlab.storage import HistogramUpdate, JobRecord, ProbeResult
from latlab.storage.records import ProgressUpdate

KIND = "probe"
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PATH = re.compile(r"/[\x21-\x7e]*")
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_NUMBERS = re.compile(r"[0-9a-fA-FxX.]+")
_HOST_HINT = "give a name like example.com or an address like 127.0.0.1, without scheme or port"


def _legacy_ipv4(host: str) -> str | None:
    """The dotted-quad form of an address the C resolver also reads (``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``), or None."""
    try:
        return socket.inet_ntoa(socket.inet_aton(host.removesuffix(".")))
    except OSError:
        return None


def check_host(value: str) -> str:
    """A DNS name or an IP literal (IPv6 with or without brackets), nothing else.

    IPv4 only in its dotted-quad form: the other forms the resolver reads hide an address
    from a reader (and from a policy written for dotted quads).
    """
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    canonical = _legacy_ipv4(host) if _NUMBERS.fullmatch(host) else None
    if canonical is not None:
        raise ValueError(f"host {value!r} is an IPv4 address: write it as {canonical}")
    labels = host.removesuffix(".").split(".")
    if not host or len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"host {value!r} is not a valid hostname or IP address; {_HOST_HINT}")
    if _NUMBER.fullmatch(labels[-1]):  # a name never ends in a number (WHATWG URL)
        raise ValueError(f"host {value!r} is not a valid IP address; {_HOST_HINT}")
    return host.lower()


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeLimits:
    """What the API lets a new experiment ask for; pass as the validation context.
    Specs validated without it (those already stored) get the static bounds only."""

    min_interval_s: float
    max_results: int
    policy: TargetPolicy


def probe_limits(settings: Settings, policy: TargetPolicy | None = None) -> ProbeLimits:
    """Built once per app (the policy caches which addresses are this machine's), with the
    probe client's ``policy`` so creation and connection judge alike."""
    return ProbeLimits(
        min_interval_s=settings.min_interval_s,
        max_results=settings.max_results,
        policy=policy if policy is not None else TargetPolicy.from_settings(settings),
    )


def _limits(info: ValidationInfo) -> ProbeLimits | None:
    return info.context if isinstance(info.context, ProbeLimits) else None


def _refused_host(host: str, reason: str) -> ValidationError:
    """A validation error on ``host``, raised after the fields once the port is known."""
    error = PydanticCustomError(
        "target_not_allowed",
        "target not allowed: {host} ({reason})",
        {"host": host, "reason": reason},
    )
    return ValidationError.from_exception_data(
        "ProbeSpec", [InitErrorDetails(type=error, loc=("host",), input=host)]
    )


class ProbeSpec(BaseModel):
    """What an experiment measures, and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    host: str = Field(description="Host name or IP address of the target.")
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port of the target.")]
    interval_s: Annotated[
        float, Field(gt=0, le=86_400, description="Seconds between probe starts.")
    ] = 1.0
    count: Annotated[int, Field(ge=1, le=10_000_000, description="Probes in total.")] = 10
    path: str = Field("/api/latency", max_length=2048, description="Path (and query) to GET.")
    scheme: Literal["http", "https"] = "http"
    keep_alive: bool = Field(False, description="Reuse one connection instead of a new one each.")
    timeout_s: Annotated[float, Field(gt=0, le=300, description="Timeout of one probe.")] = 10.0
    verify_tls: bool = Field(True, description="Verify the certificate for https.")

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("interval_s")
    @classmethod
    def _interval_in_limits(cls, value: float, info: ValidationInfo) -> float:
        limits = _limits(info)
        if limits is not None and value < limits.min_interval_s:
            raise ValueError(f"interval must be at least {limits.min_interval_s} s")
        return value

    @field_validator("count")
    @classmethod
    def _count_in_limits(cls, value: int, info: ValidationInfo) -> int:
        limits = _limits(info)
        if limits is not None and value > limits.max_results:
            raise ValueError(f"count must be at most {limits.max_results}")
        return value

    @model_validator(mode="after")
    def _target_allowed(self, info: ValidationInfo) -> ProbeSpec:
        limits = _limits(info)
        if limits is None:
            return self
        try:
            address = ipaddress.ip_address(self.host)
        except ValueError:
            return self  # a name: judged on the addresses it resolves to, at connect time
        reason = limits.policy.refusal(address, self.port)
        if reason is not None:
            raise _refused_host(self.host, reason)
        return self

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str) -> str:
        if not _PATH.fullmatch(value):
            raise ValueError("path must start with '/' and hold no spaces or control characters")
        return value

    @classmethod
    def validate_new(cls, fields: object, limits: ProbeLimits) -> ProbeSpec:
        """Validate a new experiment's spec within ``limits`` and their target policy (a spec
        already stored is validated without them)."""
        return cls.model_validate(fields, context=limits)

    def target(self) -> ProbeTarget:
        return ProbeTarget(
            host=self.host,
            port=self.port,
            path=self.path,
            scheme=self.scheme,
            timeout_s=self.timeout_s,
            verify_tls=self.verify_tls,
            keep_alive=self.keep_alive,
        )


def to_result(
    job_id: int, seq: int, exchange: Exchange, ctx: RunContext, started_s: float, due_s: float
) -> ProbeResult:
    return ProbeResult(
        job_id=job_id,
        seq=seq,
        timestamp=ctx.clock.to_utc(started_s),
        scheduled_at=ctx.clock.to_utc(due_s),
        **dataclasses.asdict(exchange),
    )


class ProbeRunner(KindRunner):
    """Runs an experiment from its checkpoint: results already stored are never redone."""

    kind = KIND

    def __init__(self, stats_flush_results: int = FLUSH_RESULTS) -> None:
        self._stats_flush_results = stats_flush_results

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        started()
        spec = ProbeSpec.model_validate(job.spec)
        ctx.events.describe(job.id, ProbeTags(spec.host, spec.port, spec.path))
        count = functools.partial(ctx.store.probe_results.count, job.id)
        done = await until_stored(f"experiment {job.id}", count)
        if done >= spec.count:
            return
        stats = StatsKeeper(ctx.store, job.id, self._stats_flush_results)
        if done:  # a new experiment has nothing stored to take up
            await until_stored(f"experiment {job.id}", stats.load)
        prober = ctx.probes.prober(spec.target())
        try:
            await self._probe_until_done(job, spec, done, prober, ctx, stats)
        finally:
            await prober.aclose()

    async def _probe_until_done(
        self,
        job: JobRecord,
        spec: ProbeSpec,
        done: int,
        prober: HttpProber,
        ctx: RunContext,
        stats: StatsKeeper,
    ) -> None:
        skipped_before = int(job.progress.get("skipped_slots", 0))
        owner = ctx.coordinator.owner_id if ctx.coordinator.shared else None
        # The first probe runs at once (as the original did), the rest on a drift-free grid.
        schedule = SlotSchedule(ctx.clock.monotonic(), spec.interval_s)
        while True:
            due_s = schedule.due_s
            await ctx.clock.sleep_until(due_s)
            started_s = ctx.clock.monotonic()
            exchange = await prober.probe()
            result = to_result(job.id, done, exchange, ctx, started_s, due_s)
            done += 1
            progress = {"done": done, "skipped_slots": skipped_before + schedule.skipped}
            # Fenced: if another process took the experiment over, this write is dropped.
            update = ProgressUpdate(KIND, job.id, progress, owner=owner)
            await self._store(ctx, stats, result, update)
            if done >= spec.count:
                return
            schedule.advance(ctx.clock.monotonic())

    async def _store(
        self,
        ctx: RunContext,
        stats: StatsKeeper,
        result: ProbeResult,
        update: ProgressUpdate,
    ) -> None:
        """Write the result with its checkpoint, and the histograms when they are due.

        A store outage pauses the probing (missed slots are skipped and counted), so the
        experiment still ends with exactly ``count`` results.
        """
        what = f"experiment {result.job_id}"
        stats.add(result)
        histograms: list[HistogramUpdate] = []
        if stats.due():
            histograms = await until_stored(what, stats.updates)
        write = functools.partial(ctx.writer.write, [result], [update], histograms)
        await until_stored(what, write)
        if histograms:
            stats.flushed(histograms)
