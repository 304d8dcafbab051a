"""The fields of the dashboard's "new experiment" and "new load run" forms.

Only what a form asks for: the API validates the body and says what is wrong, field by
field, and the form shows that beside the field (the same messages as the API's 422).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # the body's field
    label: str
    hint: str
    type: str = "text"  # how it is sent: text, number, bool, list (comma-separated)
    value: str | None = None
    placeholder: str = ""

    @property
    def input(self) -> str:
        return {"number": "text", "bool": "checkbox"}.get(self.type, "text")


EXPERIMENT_FIELDS = (
    Field("scheme", "Scheme", "http, or https (TLS).", value="http"),
    Field("host", "Host", "Name or IP address of the target.", placeholder="127.0.0.1"),
    Field("port", "Port", "TCP port.", "number", placeholder="8008"),
    Field("path", "Path", "Path and query to request.", value="/api/latency"),
    Field("interval_s", "Interval (s)", "Seconds between probes.", "number", "1"),
    Field("count", "Probes", "How many in all.", "number", "10"),
    Field("method", "Method", "GET, HEAD, POST, …", value="GET"),
    Field("expect_status", "Expected status", "Like 2xx or 200,201; empty: any."),
    Field("keep_alive", "Keep-alive", "Reuse one connection.", "bool"),
    Field("locations", "Locations", "Comma-separated, with workers; empty: here.", "list"),
)

LOAD_RUN_FIELDS = (
    Field("url", "URL", "http(s) URL to load.", placeholder="http://127.0.0.1:8008/api/latency"),
    Field("rate", "Rate (req/s)", "Open model; empty: as fast as it can.", "number"),
    # No duration filled in: a run is a duration or a count, and the API refuses both.
    Field("duration", "Duration", "Like 30s or 5m; empty: 10 s, or the count.", placeholder="30s"),
    Field("requests", "Requests", "How many in all (instead of a duration).", "number"),
    Field("connections", "Connections", "Keep-alive connections in all.", "number", "64"),
    Field("method", "Method", "GET, POST, …", value="GET"),
    Field("thresholds", "Thresholds", "Comma-separated, like p99<50ms, errors<1%.", "list"),
    Field("probe", "Side probe", "A fresh connection's latency every, like 0.5s; empty: none."),
)
