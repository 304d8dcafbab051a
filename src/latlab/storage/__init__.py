"""Storage port and adapters, chosen by URL scheme and imported lazily."""

from __future__ import annotations

from latlab.storage.base import JobNotFound, StateConflict, Store, StoreError, StoreUnavailable
from latlab.storage.records import JobRecord, JobState, Page, ProbeResult
from latlab.storage.registry import UnsupportedStorageURL, open_store

__all__ = [
    "JobNotFound",
    "JobRecord",
    "JobState",
    "Page",
    "ProbeResult",
    "StateConflict",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "UnsupportedStorageURL",
    "open_store",
]
