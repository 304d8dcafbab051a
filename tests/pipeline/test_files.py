"""The writer's files: their line count is their position, a line cut by a crash is removed,
a file that is not the pipeline's is refused, an error reason stays one cell."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from latlab.pipeline.files import AppendOnlyFile, Fsync
from latlab.pipeline.receipts import RESULTS_HEADER, Receipt, result_line, utc_text

LINE = " | 8b9cad0e-1d0b-4c8e-9b5a-0a6f7d3f0c11 | 2026-12-03 10:00:00.000001 |\n"


def test_a_new_file_gets_its_header_and_position_0(tmp_path: Path) -> None:
    file = AppendOnlyFile(tmp_path / "1.txt", RESULTS_HEADER, Fsync.ALWAYS)
    file.close()
    assert (tmp_path / "1.txt").read_text() == RESULTS_HEADER
    assert file.lines == 0


def test_a_line_cut_short_by_a_crash_is_removed_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "1.txt"
    path.write_text(RESULTS_HEADER + LINE + LINE[:20])
    file = AppendOnlyFile(path, RESULTS_HEADER, Fsync.BATCH)
    file.append([LINE])
    file.close()
    assert path.read_text() == RESULTS_HEADER + LINE + LINE
    assert file.lines == 2


def test_a_file_that_is_not_the_pipelines_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "1.txt"
    path.write_text("my notes\n")
    with pytest.raises(ValueError, match="not a pipeline file"):
        AppendOnlyFile(path, RESULTS_HEADER, Fsync.NEVER)
    assert path.read_text() == "my notes\n"


def test_times_are_utc_with_microseconds_always() -> None:
    assert utc_text(datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)) == "2026-12-03 10:00:00.000000"
    three_hours_east = datetime(2026, 12, 3, 13, 0, 0, 5, tzinfo=timezone(timedelta(hours=3)))
    assert utc_text(three_hours_east) == "2026-12-03 10:00:00.000005"


def test_a_finished_or_tried_receipt_keeps_every_other_field() -> None:
    moment = datetime(2026, 12, 3, tzinfo=UTC)
    receipt = Receipt(7, "id-7", 0.25, moment, "run-1", tries=2, done=True, error="lost")
    assert all(getattr(receipt, f.name) != f.default for f in fields(Receipt))  # none default
    assert receipt.finished("gave up") == replace(receipt, done=True, error="gave up")
    assert receipt.tried() == replace(receipt, tries=3)


def test_an_error_reason_stays_in_one_cell_of_one_line() -> None:
    receipt = Receipt(1, "id-1", 0.0, datetime(2026, 12, 3, tzinfo=UTC), error="a | b\nc")
    line = result_line(receipt, "2026-12-03 00:00:01.000000")
    assert line == " | id-1 | 2026-12-03 00:00:00.000000 | ERROR: a / b c |\n"
