"""Records the storage contracts write: one maker per kind of record."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from latlab.storage import ProbeResult, SiteResult

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def probe_result(job_id: int, seq: int, latency_ms: float = 1.5) -> ProbeResult:
    return ProbeResult(
        job_id=job_id,
        seq=seq,
        status_code=200 if latency_ms >= 0 else 0,
        latency_ms=latency_ms,
        timestamp=T0 + timedelta(seconds=seq),
        scheduled_at=T0 + timedelta(seconds=seq, milliseconds=-2),
        connect_ms=0.25,
        ttfb_ms=0.75,
        error=None if latency_ms >= 0 else "connection refused",
    )


def site_result(job_id: int, seq: int, latency_ms: float = 1.5) -> SiteResult:
    fields = dataclasses.asdict(probe_result(job_id, seq, latency_ms))
    return SiteResult(**fields, location="eu-1")
