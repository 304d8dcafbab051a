"""The test process's heap and the cyclic garbage collector.

Late in a full run the test process holds ~600,000 tracked objects (every test's app leaves a
few functions behind in FastAPI's call caches), and a full collection walks them all: 0.2-0.35 s
under coverage, measured with a ``gc.callbacks`` hook. A test that asserts on timing in this
process (a schedule's lateness, a loop stall) would measure that pass, not LatLab; the fresh-clone
CI run failed once so (a probe schedule 0.3 s behind, three slots skipped). Frozen between
test modules and before each such test, a full pass walks what the current module made: ~10 ms.
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Keep everything alive now out of every later collection, as ``latlab serve`` does with
    its start-up objects (``freeze_gc``). For the rest of the session: a frozen object that
    dies later in a reference cycle is not freed, a small price in a test process."""
    gc.collect()
    gc.freeze()
