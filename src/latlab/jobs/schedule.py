"""Drift-free slots: slot ``k`` is due at ``start + k * interval``, whatever each step took."""

from __future__ import annotations

import math


class SlotSchedule:
    """Due times for a periodic job. A step that overruns skips the slots it missed."""

    def __init__(self, start_s: float, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.start_s = start_s
        self.interval_s = interval_s
        self.index = 0
        self.skipped = 0

    @property
    def due_s(self) -> float:
        return self.start_s + self.index * self.interval_s

    def advance(self, now_s: float) -> float:
        """Move to the first slot after the current one that is not yet past; return its time."""
        self.index += 1
        if self.due_s < now_s:
            # Slots whose time passed while the last step ran are skipped, never run in a burst.
            first_future = math.ceil((now_s - self.start_s) / self.interval_s)
            self.skipped += first_future - self.index
            self.index = first_future
        return self.due_s
