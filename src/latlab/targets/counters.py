"""Request counts and queue gauges, in one table of uint64 cells that every process can read.

Each process owns one row and is its only writer, so counting needs no lock and has no
race. Whoever reports (the InfluxDB reporter, a ``/metrics`` scrape) sums the
rows. With several workers the table is a file mapped into every process (``MAP_SHARED``):
a worker's count is visible to the others at once, nothing crosses a pipe, and the file
outlives a worker, so its last counts are still there when the reporter reads them. An
aligned 8-byte store is a single instruction on the 64-bit platforms LatLab runs on, so a
reader never sees half a number.
"""

from __future__ import annotations

import mmap
from array import array
from enum import IntEnum
from pathlib import Path

from latlab.serving.counting import REQUEST_CELLS

_CELL_BYTES = 8


class Cell(IntEnum):
    """Cells after the request counts (which come first, laid out as the server counts them)."""

    TEST_TICKETS = REQUEST_CELLS  # /test tickets taken
    TEST_QUEUED = REQUEST_CELLS + 1  # gauge: /test requests holding a ticket (waiting or working)
    TEST_ABANDONED = REQUEST_CELLS + 2  # /test requests whose client left before their turn
    INFLUX_BACKLOG_POINTS = REQUEST_CELLS + 3  # gauge: points waiting to be written
    INFLUX_SENT_POINTS = REQUEST_CELLS + 4  # points written
    INFLUX_DROPPED_POINTS = REQUEST_CELLS + 5  # points dropped (a full backlog, refused)
    INFLUX_ERRORS = REQUEST_CELLS + 6  # failed write attempts


CELLS = REQUEST_CELLS + len(Cell)


class LocalCounts:
    """One process's row, counted in a plain list and copied into the shared row.

    A store into a list costs about half a store through a memoryview, and this is paid on
    every request; copying the whole row costs about a microsecond. ``publish`` runs before
    this process's reporter reads, before a ``/metrics`` page, at shutdown, and in a worker
    every 10 ms, so the parent's reporter may see the last milliseconds late (in the next
    period), never lost.
    """

    def __init__(self, shared: memoryview) -> None:
        self._shared = shared
        self.cells: list[int] = shared.tolist()

    def publish(self) -> None:
        self._shared[:] = array("Q", self.cells)


class CountsTable:
    """``rows`` rows of ``CELLS`` counters over a shared (or private) memory map."""

    def __init__(self, memory: mmap.mmap, rows: int) -> None:
        self.rows = rows
        self._memory = memory
        self._bytes = memoryview(memory)
        self._cells = self._bytes.cast("Q")
        self._views: list[memoryview] = []

    @classmethod
    def in_memory(cls, rows: int) -> CountsTable:
        """A table private to this process (one worker)."""
        return cls(mmap.mmap(-1, rows * CELLS * _CELL_BYTES), rows)

    @classmethod
    def create(cls, path: Path, rows: int) -> CountsTable:
        """A zeroed table file that other processes can ``attach``."""
        path.write_bytes(bytes(rows * CELLS * _CELL_BYTES))
        return cls.attach(path, rows)

    @classmethod
    def attach(cls, path: Path, rows: int) -> CountsTable:
        with path.open("r+b") as file:
            # The mapping keeps its own reference to the file; closing ours is fine.
            memory = mmap.mmap(file.fileno(), rows * CELLS * _CELL_BYTES)
        return cls(memory, rows)

    def row(self, index: int) -> memoryview:
        """The cells of one row; ``row[cell] += 1`` counts."""
        if not 0 <= index < self.rows:
            raise IndexError(f"row {index} of a {self.rows}-row table")
        view = self._cells[index * CELLS : (index + 1) * CELLS]
        self._views.append(view)
        return view

    def totals(self) -> list[int]:
        """Each cell summed over every row."""
        values = self._cells.tolist()
        return [sum(values[cell::CELLS]) for cell in range(CELLS)]

    def close(self) -> None:
        for view in (*self._views, self._cells, self._bytes):
            view.release()
        self._memory.close()
