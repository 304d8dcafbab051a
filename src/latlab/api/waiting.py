"""``waiting_for``: the location a running job is pinned to while no worker is up there,
shown on experiments, load runs and bots alike."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import Field

from latlab.coordination.fleet import ANY_LOCATION
from latlab.storage import JobRecord, JobState


def waiting_for(job: JobRecord, live_locations: Collection[str] | None) -> str | None:
    """The location a running job is pinned to while no worker is up there, else None.

    ``live_locations``: where workers are up; None without Redis (nothing to wait for)."""
    if job.state is not JobState.RUNNING or live_locations is None:
        return None
    # An experiment at several locations waits for each series' worker.
    for location in job.spec.get("locations") or [job.spec.get("location")]:
        if location not in (None, ANY_LOCATION, *live_locations):
            return str(location)
    return None


WAITING_FOR = Field(
    None,
    description="Running but pinned to this location, where no worker is up: it goes on once "
    "one starts there.",
)
