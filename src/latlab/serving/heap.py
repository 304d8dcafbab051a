"""Short full passes of the cyclic garbage collector in a long-running server.

A full collection walks every object the collector tracks. In a server most of them were made
at start-up (modules, settings, engines, apps) and live as long as the process, yet each full
pass walks them again: ~50 ms in the API with 1,000 experiments running
(bench/schedule_lateness.py), and 38-76 ms about once a second in ``pipeline up`` at 5,000
req/s, which was its acknowledgement p99 (bench/pipeline_throughput.py). Frozen, they are out
of every pass: ~3 ms.
"""

from __future__ import annotations

import gc


def freeze_start_up_objects() -> None:
    """Move every object alive now out of the collector's reach, for good."""
    gc.collect()
    gc.freeze()
