"""Storage port (jobs + one result stream per kind) and adapters, chosen by URL scheme and
imported lazily."""

from __future__ import annotations

from latlab.storage.base import (
    JobNotFound,
    JobStore,
    ProbeResults,
    ResultStream,
    StateConflict,
    Store,
    StoreError,
    StoreUnavailable,
)
from latlab.storage.records import JobRecord, JobState, Page, ProbeResult, Record
from latlab.storage.registry import UnsupportedStorageURL, open_store

__all__ = [
    "JobNotFound",
    "JobRecord",
    "JobState",
    "JobStore",
    "Page",
    "ProbeResult",
    "ProbeResults",
    "Record",
    "ResultStream",
    "StateConflict",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedStorageURL",
    "open_store",
]
