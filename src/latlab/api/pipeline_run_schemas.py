"""Pipeline run shapes of the v1 API: ``PipelineRunPublic`` and a page of them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from latlab.measure.stats import LatencyHistogram

if TYPE_CHECKING:
    from latlab.storage.sql.pipeline_runs import PipelineRun

logger = logging.getLogger(__name__)


class LatencyPercentiles(BaseModel):
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, payload: str | None) -> LatencyPercentiles | None:
        """From a stored histogram payload; None when it holds no latency."""
        if payload is None:
            return None
        histogram = LatencyHistogram()
        try:
            histogram.add_payload(payload)
        except (ValueError, KeyError, TypeError):  # written by another version, or damaged
            logger.warning("a pipeline run's histogram cannot be read", exc_info=True)
            return None
        stats = histogram.stats()
        if stats.p50_ms is None or stats.p90_ms is None or stats.p99_ms is None:
            return None
        assert stats.max_ms is not None
        return cls(p50=stats.p50_ms, p90=stats.p90_ms, p99=stats.p99_ms, max=stats.max_ms)


class PipelineRunPublic(BaseModel):
    """One pipeline client call and what became of its requests."""

    run_id: str
    started_at: datetime = Field(description="When the client started sending.")
    finished_at: datetime | None = Field(description="When every request had an answer.")
    requests: int | None = Field(description="Requests asked for (connection_value).")
    connections: int | None = Field(description="Connections asked for (connection_count).")
    sent: int = Field(description="Requests sent (0 until the call ends).")
    acked: int = Field(description="Requests acknowledged by the receiver (0 until the end).")
    errors: int = Field(description="Requests not acknowledged (0 until the call ends).")
    received: int | None = Field(
        description="Receipts in the queue; counted from the embedded queue, null with Redis."
    )
    processed: int | None = Field(
        description="Receipts processed (or failed for good); from the embedded queue, "
        "null with Redis."
    )
    written: int = Field(description="Result lines written to 1.txt (ERROR lines included).")
    ack_latency_ms: LatencyPercentiles | None = Field(
        description="From each send to its acknowledgement; null until the call ends."
    )
    end_to_end_latency_ms: LatencyPercentiles | None = Field(
        description="From each receive_time to its result line's write_time; null until one "
        "is written."
    )

    @classmethod
    def of(cls, run: PipelineRun) -> PipelineRunPublic:
        return cls(
            run_id=run.run_id,
            started_at=run.started_at,
            finished_at=run.finished_at,
            requests=run.requests,
            connections=run.connections,
            sent=run.sent,
            acked=run.acked,
            errors=run.errors,
            received=run.received,
            processed=run.processed,
            written=run.written,
            ack_latency_ms=LatencyPercentiles.of(run.ack_payload),
            end_to_end_latency_ms=LatencyPercentiles.of(run.e2e_payload),
        )


class PipelineRunsPublic(BaseModel):
    data: list[PipelineRunPublic]
    count: int = Field(description="Pipeline runs in all, on every page.")
    offset: int
    limit: int
