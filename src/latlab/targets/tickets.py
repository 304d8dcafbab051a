"""Ticket queues behind ``/test``: who works next, in arrival order, possibly across processes.

A request takes the next ticket on arrival and works when its ticket is the lowest one
still queued (the *head*); it leaves the queue when done or when its client disconnects.
This is a ticket lock, which is FIFO by construction; a plain ``flock`` is not (the kernel
wakes waiters in no promised order). Backends: ``MemoryTickets`` (one process),
``FileTickets`` (processes on one machine) and ``RedisTickets`` (``redis_tickets.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class Tickets(Protocol):
    """``poll_s``: how often to look for changes made by other processes (``None``: only this
    process changes the queue). ``renew_s``: how often ``keep_alive`` must run while this
    process holds tickets (``None``: never)."""

    poll_s: float | None
    renew_s: float | None

    async def take(self) -> int: ...

    async def head(self) -> int | None: ...

    async def leave(self, ticket: int) -> None: ...

    async def keep_alive(self) -> None: ...

    async def close(self) -> None: ...


class MemoryTickets:
    """Tickets of one process; every change goes through it, so nothing needs polling."""

    poll_s: float | None = None
    renew_s: float | None = None

    def __init__(self) -> None:
        self._last = 0
        self._queue: dict[int, None] = {}  # insertion order is ticket order

    async def take(self) -> int:
        self._last += 1
        self._queue[self._last] = None
        return self._last

    async def head(self) -> int | None:
        return next(iter(self._queue), None)

    async def leave(self, ticket: int) -> None:
        self._queue.pop(ticket, None)

    async def keep_alive(self) -> None:
        pass

    async def close(self) -> None:
        self._queue.clear()


@dataclass
class _State:
    last: int = 0
    queue: list[tuple[int, str]] = field(default_factory=list)  # (ticket, owner), ascending


class FileTickets:
    """Tickets in a small JSON file that every process on the machine can open.

    ``flock`` guards each read-modify-write for microseconds only; it is never held while
    waiting. Each process holds an exclusive ``flock`` on an *owner file* of its own for its
    whole life, so the kernel releases it when the process dies, however it dies: a ticket
    whose owner file is unlocked (or gone) belongs to a dead process and is dropped.
    """

    poll_s: float | None = 0.002
    renew_s: float | None = None

    def __init__(self, path: Path) -> None:
        self._path = path
        self.owner = secrets.token_hex(6)
        # Locked before any ticket names it, so no one can mistake it for a dead owner.
        self._owner_fd = os.open(self._owner_path(self.owner), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._owner_fd, fcntl.LOCK_EX)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._closed = False

    def _owner_path(self, owner: str) -> Path:
        return self._path.with_name(f"{self._path.name}.{owner}.owner")

    @contextlib.contextmanager
    def _state(self) -> Iterator[_State]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(self._fd).st_size
            raw = os.pread(self._fd, size, 0)
            state = _parse(raw)
            yield state
            data = json.dumps({"last": state.last, "queue": state.queue}).encode()
            if data != raw:  # most looks at the head change nothing
                # One pwrite either happens or not; the padding keeps the old tail harmless
                # until the truncate, so a crash at any point leaves valid JSON.
                os.pwrite(self._fd, data.ljust(size), 0)
                if len(data) < size:
                    os.ftruncate(self._fd, len(data))
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def take(self) -> int:
        with self._state() as state:
            state.last += 1
            state.queue.append((state.last, self.owner))
            return state.last

    async def head(self) -> int | None:
        with self._state() as state:
            while state.queue:
                ticket, owner = state.queue[0]
                if owner == self.owner or self._owner_alive(owner):
                    return ticket
                state.queue.pop(0)
            return None

    async def leave(self, ticket: int) -> None:
        with self._state() as state:
            state.queue = [entry for entry in state.queue if entry[0] != ticket]

    async def keep_alive(self) -> None:
        pass

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._state() as state:
            state.queue = [entry for entry in state.queue if entry[1] != self.owner]
        os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self._owner_path(self.owner).unlink()
        os.close(self._owner_fd)

    def _owner_alive(self, owner: str) -> bool:
        path = self._owner_path(owner)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the lock if we got it
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # its process is gone
        return False


def _parse(data: bytes) -> _State:
    """The file's state; an empty or unreadable file (a power cut) starts a fresh queue."""
    try:
        raw = json.loads(data)
        return _State(int(raw["last"]), [(int(t), str(o)) for t, o in raw["queue"]])
    except (ValueError, KeyError, TypeError):
        return _State()
