"""What a job kind implements, and what it is handed to run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from latlab.jobs.clock import Clock
from latlab.measure.client import ProbeClient
from latlab.storage import JobRecord, Store
from latlab.storage.writer import BatchWriter


@dataclass(frozen=True, slots=True)
class RunContext:
    store: Store
    writer: BatchWriter
    clock: Clock
    probes: ProbeClient


class JobRunner(Protocol):
    kind: str

    async def run(self, job: JobRecord, ctx: RunContext) -> None:
        """Continue ``job`` from its checkpoint; return when it is complete.

        Raising marks the job failed; cancellation (pause, stop, shutdown) must propagate.
        """
        ...
