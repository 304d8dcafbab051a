from __future__ import annotations

import pytest

from latlab.jobs.schedule import SlotSchedule


def test_slots_sit_on_a_fixed_grid() -> None:
    schedule = SlotSchedule(start_s=100.0, interval_s=0.5)
    dues = [schedule.due_s]
    for now in (100.01, 100.6, 101.2):
        dues.append(schedule.advance(now))
    assert dues == [100.0, 100.5, 101.0, 101.5]
    assert schedule.skipped == 0


def test_an_overrun_skips_missed_slots() -> None:
    schedule = SlotSchedule(start_s=0.0, interval_s=1.0)
    assert schedule.advance(now_s=3.2) == 4.0
    assert (schedule.index, schedule.skipped) == (4, 3)  # slots 1, 2 and 3 were missed


def test_finishing_exactly_on_a_slot_keeps_it() -> None:
    schedule = SlotSchedule(start_s=0.0, interval_s=1.0)
    assert schedule.advance(now_s=2.0) == 2.0
    assert schedule.skipped == 1


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        SlotSchedule(0.0, 0.0)
