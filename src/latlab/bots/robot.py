"""Print N, N+1, … once a tick to stdout until interrupted."""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import TextIO

from latlab.serving.signals import interrupt_on_stop_signals


def count(start_number: int, tick_s: float = 1.0, out: TextIO = sys.stdout) -> None:
    """Print from ``start_number`` on, one number a tick, drift-free; return on Ctrl-C."""
    due_s = time.monotonic()
    number = start_number
    try:
        while True:
            out.write(f"{number}\n")
            out.flush()
            number += 1
            due_s += tick_s
            behind_s = time.monotonic() - due_s
            if behind_s > 0:  # suspended or starved: the next tick is the next one due
                due_s += math.ceil(behind_s / tick_s) * tick_s
            time.sleep(due_s - time.monotonic())
    except KeyboardInterrupt:
        return


def run_robot(start_number: int, tick_s: float = 1.0) -> None:
    """Count until SIGINT or SIGTERM, both installed here: a robot started in the
    background inherits SIGINT ignored, and would not stop on it otherwise."""
    interrupt_on_stop_signals()
    count(start_number, tick_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m latlab.bots", description="Print N, N+1, … once a second until Ctrl-C."
    )
    parser.add_argument("start_number", nargs="?", type=int, default=0, help="first number")
    parser.add_argument("--tick-s", type=float, default=1.0, help="seconds between numbers")
    args = parser.parse_args(argv)
    if not args.tick_s > 0:
        parser.error("--tick-s must be > 0")
    run_robot(args.start_number, args.tick_s)
    return 0
