"""Yielding the CPU and taking it back reach every thread of the process (Linux keeps both
policy and niceness per thread), in a process of its own: the test's keeps its priority."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = """
import json, os, threading
from latlab.serving.priority import reclaim_the_cpu, yield_the_cpu

def seen():
    tids = [int(tid) for tid in os.listdir("/proc/self/task")]
    return [[os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)] for tid in tids]

release = threading.Event()
made_before = threading.Thread(target=release.wait)
made_before.start()
yield_the_cpu()
yielded = seen()
reclaim_the_cpu()
print(json.dumps({"yielded": yielded, "reclaimed": seen()}))
release.set()
"""


def test_every_thread_yields_and_takes_the_cpu_back_keeping_its_niceness() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, check=True)
    seen = json.loads(done.stdout)
    nice = min(os.nice(0) + 10, 19)
    assert len(seen["yielded"]) == 2  # the main thread and one made before
    assert seen["yielded"] == [[os.SCHED_IDLE, nice]] * 2
    assert seen["reclaimed"] == [[os.SCHED_OTHER, nice]] * 2
