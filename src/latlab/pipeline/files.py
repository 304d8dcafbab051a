"""The writer's two files, ``2.txt`` (receipts) and ``1.txt`` (results), append-only.

A file's position is its number of lines after the header: line ``n`` names receipt ``n``.
So a restarted writer knows where it is from the file itself, and never writes a line
twice; a line cut short by a crash is removed first (it is written again whole).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

READ_CHUNK_BYTES = 1 << 20
LAST_LINE_BYTES = 4096  # more than any line the writer writes
BATCH_FSYNC_S = 0.2  # with fsync "batch": at most this long between a write and its fsync


class Fsync(StrEnum):
    ALWAYS = "always"  # after every write: a line written is on disk
    BATCH = "batch"  # within BATCH_FSYNC_S (and on close)
    NEVER = "never"  # when the OS decides; a crash of the process loses nothing still


class AppendOnlyFile:
    """One of the two files, opened for appending at its end."""

    def __init__(self, path: Path, header: str, fsync: Fsync) -> None:
        self.path = path
        self._fsync = fsync
        self.lines = _recover(path, header.encode())
        self._file: BinaryIO = path.open("ab")
        self._unsynced = False

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        self._file.write("".join(lines).encode())
        self._file.flush()
        self.lines += len(lines)
        if self._fsync is Fsync.ALWAYS:
            os.fsync(self._file.fileno())
        elif self._fsync is Fsync.BATCH:
            self._unsynced = True  # the writer's loop syncs every BATCH_FSYNC_S

    def last_line(self) -> str:
        """The last whole line ("" when only the header is there)."""
        if self.lines == 0:
            return ""
        with self.path.open("rb") as file:
            end = file.seek(0, os.SEEK_END)
            file.seek(max(0, end - LAST_LINE_BYTES))
            tail = file.read().rstrip(b"\n")
        return tail.rsplit(b"\n", 1)[-1].decode()

    def sync_pending(self) -> None:
        """fsync, if anything was written since the last one."""
        if self._unsynced:
            self.sync()

    def sync(self) -> None:
        self._unsynced = False
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._fsync is not Fsync.NEVER:
            self.sync()
        self._file.close()


def _recover(path: Path, header: bytes) -> int:
    """The number of whole lines after the header; writes the header into a new file and
    cuts a last line a crash left without its newline. Reads in chunks: files grow large."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as file:
        if file.seek(0, os.SEEK_END) == 0:
            file.write(header)
            file.flush()
            os.fsync(file.fileno())
            return 0
        file.seek(0)
        if file.read(len(header)) != header:
            raise ValueError(f"{path} is not a pipeline file: it does not start with {header!r}")
        newlines, whole_bytes, offset = 1, len(header), len(header)
        while chunk := file.read(READ_CHUNK_BYTES):
            found = chunk.count(b"\n")
            if found:
                newlines += found
                whole_bytes = offset + chunk.rfind(b"\n") + 1
            offset += len(chunk)
    if whole_bytes < offset:
        with path.open("r+b") as file:
            file.truncate(whole_bytes)
    return newlines - 1
