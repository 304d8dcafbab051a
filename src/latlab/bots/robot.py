"""Print N, N+1, … once a tick to stdout until interrupted."""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from types import FrameType
from typing import TextIO


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


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m latlab.bots", description="Print N, N+1, … once a second until Ctrl-C."
    )
    parser.add_argument("start_number", nargs="?", type=int, default=0, help="first number")
    parser.add_argument("--tick-s", type=float, default=1.0, help="seconds between numbers")
    args = parser.parse_args(argv)
    if not args.tick_s > 0:
        parser.error("--tick-s must be > 0")
    # SIGTERM ends the robot as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    count(args.start_number, args.tick_s)
    return 0
