"""What an experiment measures: the ``ProbeSpec``, its host check and the limits the API sets.

A request is a GET unless the spec says otherwise (method, headers, body), and any complete
response counts unless the spec asks more of it (the ``expect_…`` checks).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from latlab.jobs.kinds.spec_checks import (
    LOCATION_NEEDS_WORKERS,
    LOCATIONS_NEED_WORKERS,
    Headers,
    Location,
    Method,
    field_error,
    location_field,
)
from latlab.measure.http_probe import ProbeTarget, ResponseChecks
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestError, RequestSpec, parse_expect_status
from latlab.settings import Settings

_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PATH = re.compile(r"/[\x21-\x7e]*")
_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_NUMBERS = re.compile(r"[0-9a-fA-FxX.]+")
MAX_LOCATIONS = 16
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
    workers: bool = False  # Redis is configured: a location can be asked for


def probe_limits(settings: Settings, policy: TargetPolicy | None = None) -> ProbeLimits:
    """Built once per app (the policy caches which addresses are this machine's), with the
    probe client's ``policy`` so creation and connection judge alike."""
    return ProbeLimits(
        min_interval_s=settings.min_interval_s,
        max_results=settings.max_results,
        policy=policy if policy is not None else TargetPolicy.from_settings(settings),
        workers=settings.redis_url is not None,
    )


def _limits(info: ValidationInfo) -> ProbeLimits | None:
    return info.context if isinstance(info.context, ProbeLimits) else None


class ProbeSpec(BaseModel):
    """What an experiment measures, and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    host: str = Field(description="Host name or IP address of the target.")
    port: Annotated[int, Field(ge=1, le=65535, description="TCP port of the target.")]
    interval_s: Annotated[
        float, Field(gt=0, le=86_400, description="Seconds between probe starts.")
    ] = 1.0
    count: Annotated[int, Field(ge=1, le=10_000_000, description="Probes in total.")] = 10
    path: str = Field("/api/latency", max_length=2048, description="Path (and query) to request.")
    scheme: Literal["http", "https"] = "http"
    keep_alive: bool = Field(False, description="Reuse one connection instead of a new one each.")
    timeout_s: Annotated[float, Field(gt=0, le=300, description="Timeout of one probe.")] = 10.0
    verify_tls: bool = Field(True, description="Verify the certificate for https.")
    method: Method = "GET"
    headers: Headers = Field(default_factory=dict)
    body: str = Field("", description="Request body, sent as UTF-8; not with GET or HEAD.")
    expect_status: str | None = Field(
        None,
        max_length=512,
        description="Statuses that pass, like '200,201' or '2xx' (or a list); null: any.",
    )
    expect_body_contains: str | None = Field(
        None, min_length=1, max_length=1024, description="Text the response body must hold."
    )
    expect_max_latency_ms: float | None = Field(
        None, gt=0, description="Latency above which a probe fails."
    )
    location: str | None = location_field("the probes")
    locations: list[Location] | None = Field(
        None,
        min_length=1,
        max_length=MAX_LOCATIONS,
        description="A series of `count` probes at each of these locations (workers started "
        "with `latlab worker --location`), results and stats per location and merged. "
        "Needs LATLAB_REDIS_URL.",
    )

    @field_validator("host")
    @classmethod
    def _valid_host(cls, value: str) -> str:
        return check_host(value)

    @field_validator("location")
    @classmethod
    def _location_needs_workers(cls, value: str | None, info: ValidationInfo) -> str | None:
        limits = _limits(info)
        if value is not None and limits is not None and not limits.workers:
            raise ValueError(LOCATION_NEEDS_WORKERS)
        return value

    @field_validator("locations")
    @classmethod
    def _locations_apart(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        limits = _limits(info)
        if value is not None and limits is not None and not limits.workers:
            raise ValueError(LOCATIONS_NEED_WORKERS)
        if value is not None and len(set(value)) < len(value):
            raise ValueError("locations must not repeat: one series per location")
        return value

    @model_validator(mode="after")
    def _one_way_to_place(self, info: ValidationInfo) -> ProbeSpec:
        """``location`` pins one series, ``locations`` makes one at each: not both. Each
        series counts ``count`` results, the experiment all of them."""
        if self.location is not None and self.locations is not None:
            message = "give location (one series) or locations (one at each), not both"
            raise field_error("ProbeSpec", "locations", "value_error", message, self.locations)
        limits = _limits(info)
        if limits is not None and self.count * len(self.sites) > limits.max_results:
            message = f"count times locations must be at most {limits.max_results}"
            raise field_error("ProbeSpec", "count", "value_error", message, self.count)
        return self

    @property
    def sites(self) -> list[str]:
        """The locations of its series; none for an experiment of one series."""
        return list(self.locations or ())

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
            message = f"target not allowed: {self.host} ({reason})"
            raise field_error("ProbeSpec", "host", "target_not_allowed", message, self.host)
        return self

    @field_validator("body", "expect_body_contains")
    @classmethod
    def _encodable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # a lone surrogate, which JSON can escape
                raise ValueError(f"{info.field_name} must be valid Unicode text") from None
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _statuses_as_text(cls, value: Any) -> Any:
        """A code or a list (``[200, "3xx"]``) as the text form (``"200,3xx"``), then checked."""
        if type(value) is int:
            return str(value)
        if not isinstance(value, list):
            return value
        if not value or not all(isinstance(item, str) or type(item) is int for item in value):
            raise ValueError("expect_status must be a text like '200,201' or '2xx', or a list")
        return ",".join(str(item) for item in value)

    @field_validator("expect_status")
    @classmethod
    def _valid_statuses(cls, value: str | None) -> str | None:
        try:
            return None if value is None else parse_expect_status(value).text
        except RequestError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _request_sendable(self) -> ProbeSpec:
        """What a body and a body check may be depends on the method."""
        try:
            RequestSpec(method=self.method, body=self.body.encode())
        except RequestError as exc:
            raise field_error("ProbeSpec", "body", "request_error", str(exc), self.body) from None
        needle = self.expect_body_contains
        if self.method == "HEAD" and needle is not None:
            message = "a HEAD response has no body to check"
            raise field_error("ProbeSpec", "expect_body_contains", "value_error", message, needle)
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
            request=RequestSpec(self.method, tuple(self.headers.items()), self.body.encode()),
            checks=self.checks(),
        )

    def checks(self) -> ResponseChecks:
        """The ``expect_…`` fields as the prober applies them."""
        status = parse_expect_status(self.expect_status) if self.expect_status else None
        needle = (self.expect_body_contains or "").encode()
        return ResponseChecks(status, needle, self.expect_max_latency_ms)
