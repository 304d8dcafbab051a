"""The pipeline's queue, as a port: receipts in order, claimed for processing, finished.

Adapters: ``sql.py`` (LatLab's SQL store; one process, ``pipeline up``) and ``redis.py``
(Redis Streams with a consumer group; services anywhere). Both pass one contract suite
(``tests/pipeline/queue/test_contract.py``).

- ``append`` returns once the receipts are durable: that is what the receiver's "Ok" means.
  Receipts get ``seq`` 1, 2, 3, … in the order they were appended, with no gap.
- ``claim`` hands out receipts to process: new ones, and ones claimed before by a handler
  that died (redelivery; at-least-once), each time with ``tries`` one higher.
- ``finish`` records the outcome once (a second finish of the same receipt changes nothing).
- The writer reads ``receipts(after=n)`` in order, and learns of outcomes from ``finished``:
  a feed of ``(seq, error)`` from a ``mark``; ``mark()`` is the feed's end now, so that
  outcomes from then on are seen even while ``receipts`` is being read.
- ``forget(through=n)``: the writer has both lines of receipts 1…n on disk; the queue drops
  them (and the outcomes the writer has read), so that it does not grow by one entry per
  request for ever. The last receipt is always kept: numbering goes on after a restart. The
  SQL store counts a client run's dropped receipts on its ``pipeline_runs`` row (and keeps
  them until the run has one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from latlab.pipeline.receipts import Incoming, Receipt


class QueueUnavailable(RuntimeError):
    """The queue cannot be used (its server is down, or it cannot serve this setup)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    seq: int
    error: str | None  # None: processed


class PipelineQueue(Protocol):
    async def append(self, batch: Sequence[Incoming]) -> list[Receipt]:
        """Make ``batch`` durable, in order; its receipts, stamped and numbered."""
        ...

    async def claim(self, limit: int, wait_s: float) -> list[Receipt]:
        """Up to ``limit`` receipts to process, waiting up to ``wait_s`` for one."""
        ...

    async def finish(self, seq: int, error: str | None) -> None:
        """Receipt ``seq`` is processed (``error`` None) or failed for good."""
        ...

    async def heartbeat(self, seqs: Sequence[int]) -> list[int]:
        """Keep the claimed receipts ``seqs`` (still in process) from being handed to another
        handler; call it every third of the lease. Returns those still held."""
        ...

    async def receipts(self, after: int, limit: int, wait_s: float) -> list[Receipt]:
        """Up to ``limit`` receipts with ``seq > after``, in order, with their outcome as
        known now; waits up to ``wait_s`` while there is none."""
        ...

    async def mark(self) -> str:
        """The end of the outcome feed now."""
        ...

    async def finished(self, mark: str, limit: int, wait_s: float) -> tuple[list[Outcome], str]:
        """Outcomes recorded after ``mark`` (up to ``limit``, waiting up to ``wait_s`` for
        one), and the mark after them."""
        ...

    async def forget(self, through: int) -> None:
        """Receipts ``1..through`` are written for good: drop them (keeping the last one)."""
        ...

    async def close(self) -> None: ...
