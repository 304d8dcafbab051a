"""Load processes started ahead of need, so that a paused run resumes without waiting for them.

A load process is a fresh interpreter (:mod:`latlab.measure.load.process`) that spends about
80 ms importing what it needs before it can read its plan: most of what a resume took. When a
run is paused, its runner asks for as many processes as its pool had (at most ``most`` kept at
once). They are started then, while the load is halted, and wait for a plan on their pipes;
the next pool here takes them. Those not taken within ``keep_s`` end.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import subprocess
import sys
from collections import deque
from multiprocessing.connection import Connection
from time import monotonic

Spawned = tuple[subprocess.Popen[bytes], Connection]

KEEP_S = 300.0  # a warm process not taken by then ends
MOST = max(4, os.cpu_count() or 1)  # more processes than cores rarely load a target harder
END_WAIT_S = 5.0  # an ending process gets this long before it is killed


def spawn() -> Spawned:
    """A new load process and the parent's end of its pipe; it waits for its plan."""
    ours, theirs = multiprocessing.Pipe()
    command = [sys.executable, "-m", "latlab.measure.load.process"]
    try:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command, str(theirs.fileno()), str(os.getpid())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # never a closed descriptor a socket could take
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours


async def ended(spawned: Spawned, *, told: bool = False) -> None:
    """Wait for the process to end (killed if it does not), then close its pipe. ``told``:
    it was told to stop already; otherwise closing the pipe first tells it."""
    process, pipe = spawned
    if not told:
        pipe.close()  # a process waiting for its plan reads the end of the pipe and exits
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, process.wait, END_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        await loop.run_in_executor(None, process.wait)
    pipe.close()


class WarmProcesses:
    """Processes kept ready for the next pools of one runner; :meth:`keep` runs as a service."""

    def __init__(self, keep_s: float = KEEP_S, most: int = MOST) -> None:
        self._keep_s = keep_s
        self._most = most
        self._warm: deque[tuple[float, Spawned]] = deque()  # (when it ends, the process)
        self._asked = 0  # asked for, not started yet
        self._ending: list[Spawned] = []  # told to end (their pipes closed), not waited for
        self._changed = asyncio.Event()

    @property
    def count(self) -> int:
        """Processes warm now."""
        return len(self._warm)

    @property
    def wanted(self) -> int:
        """Processes warm now or asked for: what the next pools here may take."""
        return len(self._warm) + self._asked

    def take(self) -> Spawned:
        """A warm process if one is alive, else a new one (which stands for one asked for
        and not started yet: that one is no longer needed)."""
        while self._warm:
            _, spawned = self._warm.popleft()
            if spawned[0].poll() is None:
                return spawned
            spawned[1].close()  # it died meanwhile (and poll() reaped it)
        self._asked = max(0, self._asked - 1)
        return spawn()

    def want(self, count: int) -> None:
        """Have ``count`` more processes warm soon (a pool of that many was paused)."""
        self._asked = min(self._asked + count, self._most - len(self._warm))
        self._changed.set()

    async def keep(self) -> None:
        """Start what was asked for and end what was not taken in time, until cancelled."""
        while True:
            self._changed.clear()
            await self._start_asked()
            await self._end_expired()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._until_next_expiry_s()):
                    await self._changed.wait()

    async def _start_asked(self) -> None:
        while self._asked > 0:
            self._warm.append((monotonic() + self._keep_s, spawn()))
            self._asked -= 1
            await asyncio.sleep(0)  # one fork and exec at a time: the loop runs jobs too

    async def _end_expired(self) -> None:
        now_s = monotonic()
        while self._warm and self._warm[0][0] <= now_s:
            _, spawned = self._warm.popleft()
            spawned[1].close()  # a process waiting for its plan reads the end and exits
            self._ending.append(spawned)
        await self._reap()

    async def _reap(self) -> None:
        """Wait for the processes told to end; killed if they do not (see :func:`ended`)."""
        while self._ending:
            await ended(self._ending[-1], told=True)
            self._ending.pop()  # only once waited for: a cancelled wait is done by close()

    def _until_next_expiry_s(self) -> float | None:
        return max(0.0, self._warm[0][0] - monotonic()) if self._warm else None

    async def close(self) -> None:
        """End every warm process (at shutdown, after :meth:`keep` was cancelled)."""
        closing, self._ending = [*self._ending, *(s for _, s in self._warm)], []
        self._warm.clear()
        self._asked = 0
        await asyncio.gather(*(ended(spawned) for spawned in closing))
