"""What a job kind implements, and what it is handed to run.

A kind is one module in ``jobs/kinds/`` with a runner class, registered in
``jobs/kinds/__init__.py``. :class:`KindRunner` gives the optional parts their defaults, so a
kind that only runs jobs one by one implements ``kind``, ``resume`` and ``run``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from latlab.coordination import Coordinator
from latlab.jobs.clock import Clock
from latlab.jobs.events import Events
from latlab.measure.client import ProbeClient
from latlab.storage import JobRecord, Store
from latlab.storage.writer import BatchWriter

# Called by a job once it really runs (a bot has printed its first number); the start of the
# job is answered only then.
Started = Callable[[], None]


# The location of a job that runs in the control plane process that starts it, never on a
# worker (it only follows jobs that do: a sharded load run). No worker location looks like it.
RUN_HERE = "<control-plane>"


class ResumePolicy(StrEnum):
    """What a job found ``running`` at start-up becomes."""

    RESUME = "resume"  # continue from its checkpoint (experiments, bots)
    FAIL = "fail"  # ``failed`` with error "interrupted", its progress kept (load runs)


@dataclass(frozen=True, slots=True)
class Service:
    """A long-lived loop a kind needs beside its jobs (a timer, a heartbeat); supervised."""

    name: str
    work: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RunContext:
    store: Store
    writer: BatchWriter
    clock: Clock
    probes: ProbeClient
    coordinator: Coordinator  # who owns the jobs launched here, and the lease to check
    events: Events  # the seam: the writer tells it what was stored, the manager what moved


def fence_owner(ctx: RunContext) -> str | None:
    """The owner this process's checkpoints are fenced by: its own when jobs are shared (a
    stale owner's writes are dropped), none when it is alone on the store."""
    return ctx.coordinator.owner_id if ctx.coordinator.shared else None


def owned_here(job: JobRecord, ctx: RunContext) -> bool:
    """Whether the job's checkpoint names this process as its owner, or no owner yet."""
    return job.progress.get("fleet") in (None, ctx.coordinator.owner_id)


class JobRunner(Protocol):
    kind: str
    resume: ResumePolicy
    # False when ``run`` records ``{"fleet": owner}`` in its own first checkpoint (bots do,
    # saving a write per job at adoption); otherwise the manager records it before ``run``.
    needs_claim: bool

    def services(self, ctx: RunContext) -> Sequence[Service]:
        """Loops the manager runs (and restarts after a failure) while it is up."""
        ...

    async def run(self, job: JobRecord, ctx: RunContext, started: Started) -> None:
        """Continue ``job`` from its checkpoint; return when it is complete.

        Call ``started()`` once the job really runs. Raising marks the job failed, except
        :class:`~latlab.storage.StoreUnavailable`, after which the job is run again once the
        store answers. Cancellation (pause, stop, shutdown) must propagate.
        """
        ...

    async def stopped(
        self, job: JobRecord, ctx: RunContext, *, ran_here: bool
    ) -> Mapping[str, Any]:
        """Progress to keep when a user stops the job (after its work was halted).

        ``ran_here``: its work ran in this process until the stop, not in another one.
        """
        ...

    async def paused(self, job: JobRecord, ctx: RunContext) -> None:
        """After a user paused the job (its work halted, its state moved)."""
        ...

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        """Before a user's delete removes the job (its work halted)."""
        ...

    async def close(self, ctx: RunContext) -> None:
        """At shutdown, after every job of the kind was halted and services cancelled."""
        ...

    def resume_policy(self, job: JobRecord) -> ResumePolicy:
        """What ``job``, found running at start-up, becomes (the kind's ``resume``)."""
        ...

    def location(self, job: JobRecord) -> str | None:
        """Where the job must run: a worker location, :data:`RUN_HERE`, or None (anywhere)."""
        ...


class KindRunner:
    """Defaults for the optional parts of :class:`JobRunner`."""

    resume = ResumePolicy.RESUME
    needs_claim = True

    def services(self, ctx: RunContext) -> Sequence[Service]:
        return ()

    async def stopped(
        self, job: JobRecord, ctx: RunContext, *, ran_here: bool
    ) -> Mapping[str, Any]:
        return {}

    async def paused(self, job: JobRecord, ctx: RunContext) -> None:
        return None

    async def deleting(self, job: JobRecord, ctx: RunContext) -> None:
        return None

    async def close(self, ctx: RunContext) -> None:
        return None

    def resume_policy(self, job: JobRecord) -> ResumePolicy:
        return self.resume

    def location(self, job: JobRecord) -> str | None:
        location = job.spec.get("location")
        return location if isinstance(location, str) else None
