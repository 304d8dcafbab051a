"""Every stored second of a load run as an InfluxDB point, through the ``InfluxExporter``.

    load,host=127.0.0.1,method=GET,path=/sum,port=8008,run=3
        requests=60123i,errors=0i,rps=60123.0,p50_ms=0.8,p99_ms=2.1 1700000000000000000

(one line). The timestamp is when the second began. Percentiles of a second without an
answer are left out (line protocol has no null).
"""

from __future__ import annotations

from latlab.exporters.base import LoadSecond, LoadTags, SinkBase
from latlab.exporters.influx import InfluxExporter, escape_tag
from latlab.exporters.influx_probes import EPOCH, ONE_MICROSECOND

MEASUREMENT = "load"
_OPTIONAL = ("p50_ms", "p90_ms", "p99_ms", "max_ms")


def load_line(tags: LoadTags, second: LoadSecond) -> str:
    pairs = [
        ("host", tags.host),
        ("method", tags.method),
        ("path", tags.path),
        ("port", str(tags.port)),
        ("run", str(second.run_id)),
    ]
    escaped = "".join(f",{key}={escape_tag(value)}" for key, value in pairs if value)
    fields = f"requests={second.requests}i,errors={second.errors}i,rps={float(second.rps)!r}"
    for name in _OPTIONAL:
        value = getattr(second, name)
        if value is not None:
            fields += f",{name}={float(value)!r}"
    stamp_ns = (second.at - EPOCH) // ONE_MICROSECOND * 1000
    return f"{MEASUREMENT}{escaped} {fields} {stamp_ns}"


class InfluxLoadSink(SinkBase):
    """A sink of the event seam: load runs' seconds to ``exporter``."""

    def __init__(self, exporter: InfluxExporter) -> None:
        self._exporter = exporter

    def load_second(self, tags: LoadTags, second: LoadSecond) -> None:
        self._exporter.submit(load_line(tags, second), 1)
