"""What a load run sends, as the API takes it: the long ``latlab load`` option names.

Every value goes through the load engine's own parsers (``parse_url``, ``RequestSpec``,
``parse_duration``, ``parse_expect_status``, ``LoadPlan``, ``parse_threshold``), so the API
and the CLI accept and refuse the same things, and each refusal names its field. A new run is
also judged against the settings' bounds and, when its URL names an address, the target
policy (:meth:`LoadRunSpec.validate_new`); a name is judged on its addresses when it starts.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from latlab.jobs.kinds.probe_spec import check_host
from latlab.jobs.kinds.spec_checks import (
    Headers,
    Location,
    Method,
    field_error,
)
from latlab.measure.load.plan import (
    DEFAULT_DURATION_S,
    MIN_RATE,
    LoadLimits,
    LoadPlan,
    PlanError,
    parse_duration,
    parse_expect_status,
)
from latlab.measure.load.thresholds import Threshold, parse_threshold
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestError, RequestSpec, Url, parse_url

MAX_TIMEOUT_S = 300.0
# Seconds (an int or a float, never a bool), or a text parse_duration reads: "500ms", "30s",
# "2m", "1h", "30". Strict: "1e3" stays a text, refused as the CLI refuses `-d 1e3`.
Duration = Annotated[StrictFloat | StrictStr, Field(union_mode="left_to_right")]
_DURATIONS = ("duration", "timeout", "probe", "warmup")
MAX_SHARDS = 64
_FIELDS_BY_WORD = ("connections", "requests", "duration", "rate", "workers", "timeout", "warmup")


@dataclass(frozen=True, slots=True)
class LoadRunLimits:
    """What the API lets a new load run ask for; the validation context of a new spec."""

    load: LoadLimits
    policy: TargetPolicy
    min_probe_interval_s: float


def _limits(info: ValidationInfo) -> LoadRunLimits | None:
    return info.context if isinstance(info.context, LoadRunLimits) else None


def _seconds(value: float | str, option: str) -> float:
    try:
        return parse_duration(value, option)
    except PlanError as exc:
        raise ValueError(str(exc)) from None


def _duration_input(value: object, option: str) -> object:
    """A duration as it came: refused here unless a number or a text, so that a bool is
    one error naming the field instead of one per member of the union."""
    if isinstance(value, float) and not math.isfinite(value):  # JSON may carry NaN
        raise ValueError(f"{option} must be a finite number of seconds")
    if value is None or (isinstance(value, int | float | str) and not isinstance(value, bool)):
        return value
    raise ValueError(f"{option} must be a number of seconds or a text like 500ms, 30s, 2m, 1h")


def _is_zero(value: float | str) -> bool:
    return str(value).strip().rstrip("mshMSH").strip() in ("0", "0.0")


class LoadRunSpec(BaseModel):
    """A load run: where, how hard, for how long, and what counts as passing."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str = Field(max_length=4096, description="http(s) URL to load; no scheme means http.")
    connections: StrictInt = Field(64, ge=1, le=1_000_000, description="Connections in all.")
    requests: StrictInt | None = Field(
        None, ge=1, le=10**15, description="Requests in all; not with duration."
    )
    duration: Duration | None = Field(
        None, description="'30s', '2m' or seconds; neither this nor requests: 10 s."
    )
    rate: StrictFloat | None = Field(
        None, gt=0, description="Requests/s in all (open model); none: closed model."
    )
    workers: StrictInt = Field(1, ge=1, le=1024, description="Worker processes; totals are split.")
    method: Method = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str = Field("", description="Request body, sent as UTF-8; not with GET or HEAD.")
    timeout: Duration = Field(10.0, description="Timeout of one request, like '2s' or seconds.")
    expect_status: str | None = Field(
        None, max_length=512, description="Statuses that succeed ('200,201', '2xx'); none: <400."
    )
    thresholds: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list,
        max_length=32,
        description="Pass/fail conditions: 'p99<10ms', 'errors<0.1%', 'rps>5000'.",
    )
    probe: Duration | None = Field(
        None, description="Interval of a fresh-connection probe beside the load, like '0.2s'."
    )
    warmup: Duration | None = Field(None, description="Load sent first and not counted.")
    insecure: StrictBool = Field(False, description="Do not verify an https URL's certificate.")
    shards: StrictInt = Field(
        1,
        ge=1,
        le=MAX_SHARDS,
        description="Split the run over this many workers (`latlab worker`); the totals are "
        "divided and the stats merged exactly. Needs LATLAB_REDIS_URL.",
    )
    locations: list[Location] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SHARDS,
        description="One shard on a worker at each of these locations (`--location`).",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        try:
            url = parse_url(value)
        except RequestError as exc:
            raise ValueError(str(exc)) from None
        check_host(url.host)  # dotted quads only: other IPv4 forms hide the address
        return value

    @field_validator(*_DURATIONS, mode="before")
    @classmethod
    def _number_or_text(cls, value: object, info: ValidationInfo) -> object:
        return _duration_input(value, str(info.field_name))

    @field_validator("duration", "timeout", "probe")
    @classmethod
    def _valid_duration(cls, value: float | str | None, info: ValidationInfo) -> float | str | None:
        if value is not None:
            _seconds(value, str(info.field_name))
        return value

    @field_validator("warmup")
    @classmethod
    def _valid_warmup(cls, value: float | str | None) -> float | str | None:
        if value is not None and not _is_zero(value):
            _seconds(value, "warmup")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_bounded(cls, value: float | str) -> float | str:
        if _seconds(value, "timeout") > MAX_TIMEOUT_S:
            raise ValueError(f"timeout must be at most {MAX_TIMEOUT_S:g} s")
        return value

    @field_validator("probe")
    @classmethod
    def _probe_in_limits(cls, value: float | str | None, info: ValidationInfo) -> Any:
        limits = _limits(info)
        least_s = None if limits is None else limits.min_probe_interval_s
        if value is not None and least_s is not None and _seconds(value, "probe") < least_s:
            raise ValueError(f"probe interval must be at least {least_s} s")
        return value

    @field_validator("body")
    @classmethod
    def _encodable(cls, value: str) -> str:
        try:
            value.encode()
        except UnicodeEncodeError:  # a lone surrogate, which JSON can escape
            raise ValueError("body must be valid Unicode text") from None
        return value

    @field_validator("expect_status")
    @classmethod
    def _valid_statuses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_expect_status(value)
            except PlanError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("thresholds")
    @classmethod
    def _valid_thresholds(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                parse_threshold(text)
            except PlanError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _runnable(self, info: ValidationInfo) -> LoadRunSpec:
        if self.requests is not None and self.duration is not None:
            message = "give either requests or duration, not both"
            raise field_error("LoadRunSpec", "duration", "value_error", message, self.duration)
        try:
            RequestSpec(method=self.method, body=self.body.encode())
        except RequestError as exc:
            raise field_error("LoadRunSpec", "body", "request_error", str(exc), self.body) from None
        self._check_shards()
        limits = _limits(info)
        try:
            plan = self.plan()
            if limits is not None:
                limits.load.check(plan)
        except PlanError as exc:
            raise self._plan_refused(exc) from None
        if limits is not None:
            self._check_target(plan, limits.policy)
        return self

    @property
    def shard_count(self) -> int:
        """How many shards the run is split into: one per location, else ``shards``."""
        return len(self.locations) if self.locations else self.shards

    @property
    def sharded(self) -> bool:
        """Whether the run is made by shard jobs on workers (a single location is one)."""
        return self.shard_count > 1 or bool(self.locations)

    def processes(self, connections_now: int) -> int:
        """The most worker processes the run can have at ``connections_now``: each start
        or resume starts ``min(workers, connections, requests)`` (:func:`split` starts none
        idle)."""
        return min(self.workers, connections_now, self.requests or connections_now)

    def _check_shards(self) -> None:
        """Every shard must send something: at least a connection (and a request) each."""
        count = self.shard_count
        if self.locations and self.shards not in (1, count):
            message = f"shards must be left out or equal the {count} locations"
            raise field_error("LoadRunSpec", "shards", "value_error", message, self.shards)
        field = "locations" if self.locations else "shards"
        for name in ("connections", "requests"):
            value = getattr(self, name)
            if value is not None and value < count:
                message = f"{name} must be at least the run's {count} shards, one each"
                raise field_error(
                    "LoadRunSpec", field, "value_error", message, getattr(self, field)
                )
        if self.rate is not None and self.rate / count < MIN_RATE:
            message = f"rate must be at least {MIN_RATE:g} requests/s a shard ({count} shards)"
            raise field_error("LoadRunSpec", "rate", "value_error", message, self.rate)

    def _plan_refused(self, exc: PlanError) -> ValidationError:
        """The error of the field a :class:`PlanError` names, its value as the input."""
        field = _field_named(str(exc))
        value = None if field is None else getattr(self, field)
        return field_error("LoadRunSpec", field, "value_error", str(exc), value)

    def _check_target(self, plan: LoadPlan, policy: TargetPolicy) -> None:
        try:
            address = ipaddress.ip_address(plan.url.host)
        except ValueError:
            return  # a name: judged on the addresses it resolves to, when the run starts
        reason = policy.refusal(address, plan.url.port)
        if reason is not None:
            message = f"target not allowed: {plan.url.host} ({reason})"
            raise field_error("LoadRunSpec", "url", "target_not_allowed", message, self.url)

    @classmethod
    def validate_new(cls, fields: object, limits: LoadRunLimits) -> LoadRunSpec:
        """Validate a new run within ``limits`` and their target policy (a spec already
        stored is validated without them)."""
        return cls.model_validate(fields, context=limits)

    def target(self) -> Url:
        return parse_url(self.url)

    def request(self) -> RequestSpec:
        return RequestSpec(self.method, tuple(self.headers.items()), self.body.encode())

    def duration_s(self) -> float | None:
        """The run's duration in seconds; None when it is a number of requests."""
        if self.requests is not None:
            return None
        return DEFAULT_DURATION_S if self.duration is None else parse_duration(self.duration)

    def warmup_s(self) -> float:
        if self.warmup is None or _is_zero(self.warmup):
            return 0.0
        return parse_duration(self.warmup, "warmup")

    def probe_interval_s(self) -> float | None:
        return None if self.probe is None else parse_duration(self.probe, "probe")

    def parsed_thresholds(self) -> list[Threshold]:
        return [parse_threshold(text) for text in self.thresholds]

    def plan(self, ca_file: str | None = None) -> LoadPlan:
        """The whole run as the engine runs it; :class:`PlanError` if it cannot be run."""
        statuses = self.expect_status
        return LoadPlan(
            url=self.target(),
            request=self.request(),
            connections=self.connections,
            requests=self.requests,
            duration_s=self.duration_s(),
            rate=self.rate,
            workers=self.workers,
            timeout_s=parse_duration(self.timeout, "timeout"),
            expect_status=None if statuses is None else parse_expect_status(statuses),
            warmup_s=self.warmup_s(),
            verify_tls=not self.insecure,
            ca_file=ca_file,
        )


def _field_named(message: str) -> str | None:
    """The field a :class:`PlanError` is about: its messages start with the option's name."""
    first = message.split(" ", 1)[0].rstrip(":")
    return first if first in _FIELDS_BY_WORD else None
