"""The coordination port: which process runs which job, and what processes tell each other.

Jobs are addressed by ``(kind, job_id)``. A running job belongs to the owner named in its
checkpoint (``progress["fleet"]``); an owner holds a lease that it renews about every
``lease_s / 3``. A process that cannot renew in time halts its jobs before the lease can
expire (see :meth:`Coordinator.lease_fresh`), so a job never has two live owners.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol

JobKey = tuple[str, int]
# Running jobs with their owner, read from the store on demand.
RunningJobs = Callable[[], Awaitable[dict[JobKey, str]]]


class Coordinator(Protocol):
    owner_id: str
    lease_s: float
    shared: bool  # whether other processes may own (and take over) jobs of this store

    async def adopt(self, running: RunningJobs) -> list[JobKey]:
        """Running jobs that this process should run now: orphans whose owner is gone."""
        ...

    async def orphans_exist(self) -> bool:
        """Whether an owner died since the last look (then ``adopt`` is worth a store scan)."""
        ...

    async def alive(self, owner: str) -> bool:
        """Whether ``owner`` holds its lease now (a job naming it is not to be taken)."""
        ...

    async def joined(self, keys: Collection[JobKey]) -> None:
        """These jobs run here from now on."""
        ...

    async def left(self, key: JobKey) -> None:
        """The job stopped running (wherever it ran); tell its owner to halt it."""
        ...

    async def active_ids(self, kind: str) -> list[int] | None:
        """Ids of the running jobs of ``kind``, newest first; None when the store is the view."""
        ...

    async def listen(self) -> None:
        """Receive other processes' announcements until the connection fails (supervised)."""
        ...

    async def next_halt(self) -> JobKey | None:
        """The next job halted by another process; None once closed."""
        ...

    async def keep_alive(self) -> None:
        """Renew this owner's lease (called about every ``lease_s / 3``)."""
        ...

    def lease_fresh(self) -> bool:
        """Whether this process may still act as the owner of its jobs (local check, no I/O)."""
        ...

    def renew_identity(self) -> str:
        """After a lost lease: become a new owner; the old one's jobs are orphans to adopt."""
        ...

    async def close(self) -> None: ...
