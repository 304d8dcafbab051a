"""A load worker process: its own uvloop, its share of the plan, a pipe to the parent.

Messages to the parent: ``("ready",)``, ``("second", payload)`` once a second, ``("done",
sent, cut_off)`` (``cut_off``: requests in flight when the run ended, never counted) or
``("failed", text)``. From the parent: ``("start", start_s, count_from_s)``,
``("rate", r)``, ``("connections", c)``, ``("pause",)``, ``("resume",)``, ``("stop",)``. A
closed pipe means the parent is gone: the worker stops at once, and the kernel kills it
should the parent die before the pipe says so, so no orphan keeps loading a target.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from latlab.measure.http_probe import tls_context
from latlab.measure.load.engine import LoadWorker
from latlab.measure.load.plan import LoadPlan
from latlab.serving.limits import raise_fd_limit

_PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    """``python -m latlab.measure.load.process PIPE_FD PARENT_PID``: the plan comes first
    on the pipe. A fresh interpreter, not a fork: the parent may be an API with threads,
    and not ``multiprocessing`` spawn, which would import the parent's main module."""
    pipe = Connection(int(argv[0]))
    _die_with_parent(int(argv[1]))
    raise_fd_limit()  # one descriptor per connection: the hard limit, not the soft 1024
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        _, plan, address = pipe.recv()  # started ahead, a process may wait here for minutes
    except EOFError:
        return
    with contextlib.suppress(BrokenPipeError):  # the parent went away while we reported
        uvloop.run(_run(plan, address, pipe))


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - not Linux; the pipe still tells
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


async def _run(plan: LoadPlan, address: tuple[int, str], pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    tls = tls_context(plan.verify_tls, plan.ca_file) if plan.url.scheme == "https" else None
    worker = LoadWorker(
        plan, address, lambda stats: _send(pipe, ("second", stats.to_payload())), tls
    )
    started: asyncio.Future[tuple[float, float]] = loop.create_future()
    loop.add_reader(pipe.fileno(), _on_message, pipe, worker, started)
    _send(pipe, ("ready",))
    try:
        start_s, count_from_s = await started
        if start_s >= 0:
            await worker.run(start_s, count_from_s)
    except Exception as exc:  # one line for the parent; the worker is done either way
        _send(pipe, ("failed", f"{type(exc).__name__}: {exc}"))
        return
    finally:
        loop.remove_reader(pipe.fileno())
    _send(pipe, ("done", worker.sent, worker.cut_off))


def _send(pipe: Connection, message: tuple[Any, ...]) -> None:
    pipe.send(message)


def _on_message(
    pipe: Connection, worker: LoadWorker, started: asyncio.Future[tuple[float, float]]
) -> None:
    try:
        message = pipe.recv()
    except (EOFError, OSError):
        os._exit(0)  # the parent is gone: nobody will read what this run measures
    command = message[0]
    if command == "start" and not started.done():
        started.set_result((message[1], message[2]))
    elif command == "stop":
        if not started.done():
            started.set_result((-1.0, -1.0))  # stopped before it started
        worker.stop()
    elif command == "rate":
        worker.set_rate(message[1])
    elif command == "connections":
        worker.set_connections(*message[1:])
    elif command == "pause":
        worker.pause()
    elif command == "resume":
        worker.resume()


if __name__ == "__main__":
    main(sys.argv[1:])
