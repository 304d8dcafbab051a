"""Storage port (jobs, one result stream per kind, per-job histograms) and adapters, chosen by
URL scheme and imported lazily."""

from __future__ import annotations

from latlab.storage.base import (
    Histograms,
    JobNotFound,
    JobStore,
    ProbeResults,
    ResultStream,
    StateConflict,
    Store,
    StoreError,
    StoreUnavailable,
)
from latlab.storage.records import (
    TOTAL_BUCKET,
    HistogramUpdate,
    JobRecord,
    JobState,
    Page,
    ProbeResult,
    Record,
    SiteResult,
)
from latlab.storage.registry import UnsupportedStorageURL, open_store
from latlab.storage.writer import FencedOut

__all__ = [
    "TOTAL_BUCKET",
    "FencedOut",
    "HistogramUpdate",
    "Histograms",
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStore",
    "Page",
    "ProbeResult",
    "ProbeResults",
    "Record",
    "ResultStream",
    "SiteResult",
    "StateConflict",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedStorageURL",
    "open_store",
]
