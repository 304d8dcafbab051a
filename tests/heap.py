"""The test process's heap and the cyclic garbage collector.

Halfway through a full run the test process holds ~400,000 tracked objects (each test's app
leaves a few functions behind in FastAPI's call caches), and a full collection walks them
all: 0.2-0.35 s under coverage, measured with a ``gc.callbacks`` hook. A test that asserts on
timing in this process (a schedule's lateness, a loop stall) would measure that pass, not
LatLab; the fresh-clone CI run failed once so (a probe schedule 0.3 s behind, three slots
skipped). Frozen between test modules and before each such test, a full pass walks what the
current module made: ~10 ms.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


def freeze_heap() -> None:
    """Keep everything alive now out of every later collection, as ``latlab serve`` does with
    its start-up objects (``freeze_gc``). For the rest of the session: a frozen object that
    dies later in a reference cycle is not freed, nor finalized (a ResourceWarning it would
    raise is not seen). Garbage is collected first, so only what is still reachable is
    frozen: between modules, the session's fixtures and what caches keep."""
    gc.collect()
    gc.freeze()


@contextmanager
def heap_frozen() -> Iterator[None]:
    """The heap frozen for the measured part of a test, its own app included, then back in
    the collector's reach: what the test made is collected (and its finalizers run, warnings
    and all) as ever. What lives on is frozen again at the next module's start."""
    freeze_heap()
    try:
        yield
    finally:
        gc.unfreeze()
