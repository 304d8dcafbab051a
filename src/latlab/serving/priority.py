"""A process that does throughput work on the CPU others leave, but starts and stops at once.

The pipeline's handler and writer run under Linux ``SCHED_IDLE`` (and niceness +10): a
waking receiver or Redis preempts them at once, so acknowledgements do not queue behind
processing. Such a process gets next to no CPU while other processes hold every core, so
it yields only once it is up (:func:`yield_the_cpu`), and takes its share back when told
to stop (:func:`reclaim_the_cpu`): a shutdown starved for minutes is a hung service.

Policy and niceness belong to each thread on Linux: both go to every thread of the
process (a thread made later inherits its creator's). Leaving ``SCHED_IDLE`` needs root
or an ``RLIMIT_NICE`` that allows niceness +10; without it the stop just runs as it can.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

BACKGROUND_NICE = 10  # added to the niceness of a process that yields the CPU
LEAST_NICE = 19


def _threads() -> Iterator[int]:
    """This process's thread ids (Linux), or just the process elsewhere."""
    try:
        yield from (int(tid) for tid in os.listdir("/proc/self/task"))
    except OSError:
        yield 0


def yield_the_cpu() -> None:
    """Every thread 10 nicer and under ``SCHED_IDLE``, where the platform allows it."""
    for tid in _threads():
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or gone meanwhile
            nice = os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE
            os.setpriority(os.PRIO_PROCESS, tid, min(nice, LEAST_NICE))
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def reclaim_the_cpu() -> None:
    """Every thread back to the normal policy (niceness stays: lowering it needs root)."""
    for tid in _threads():
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
