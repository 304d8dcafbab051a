"""Start-up and its dependencies: a store or Redis that comes up within the start-up timeout is
waited for; one still unreachable fails once the timeout has passed, not later."""

from __future__ import annotations

import asyncio
import gc
import time
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import pytest

from latlab.coordination import CoordinatorUnavailable, open_coordinator
from latlab.storage import open_store
from latlab.storage.base import StoreUnavailable
from proxy import TcpProxy
from services import free_port, postgres_database, require_redis

TIMEOUT_S = 0.5


class LateService:
    """127.0.0.1:``port`` resets connections until :meth:`up`, then forwards to ``upstream``:
    a service that comes up while LatLab starts."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urlsplit(upstream_url)
        self._proxy = TcpProxy(upstream.hostname or "", upstream.port or 0)
        self.refused = asyncio.Event()
        self.port = 0
        self._door: asyncio.Server | None = None

    def _refuse(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()
        self.refused.set()

    async def __aenter__(self) -> Self:
        self._door = await asyncio.start_server(self._refuse, "127.0.0.1", 0)
        self.port = self._proxy.port = int(self._door.sockets[0].getsockname()[1])
        return self

    async def up(self) -> None:
        assert self._door is not None
        self._door.close()
        await self._door.wait_closed()
        await self._proxy.restore()  # on the same port

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._door is not None:
            self._door.close()
        await self._proxy.cut()


def with_port(url: str, port: int) -> str:
    """``url`` pointing at 127.0.0.1:``port`` instead of its own host and port."""
    location = urlsplit(url).netloc.rpartition("@")[2]
    return url.replace(location, f"127.0.0.1:{port}", 1)


async def test_a_store_that_comes_up_within_the_timeout_is_waited_for() -> None:
    with postgres_database() as url:
        async with LateService(url) as service:
            opening = asyncio.create_task(open_store(with_port(url, service.port), timeout_s=30))
            await service.refused.wait()  # the first attempt failed
            await service.up()
            store = await opening
            await store.close()


async def test_redis_that_comes_up_within_the_timeout_is_waited_for() -> None:
    url = require_redis()
    async with LateService(url) as service:
        opening = asyncio.create_task(
            open_coordinator(with_port(url, service.port), "latlab-test", timeout_s=30)
        )
        await service.refused.wait()
        await service.up()
        coordinator = await opening
        await coordinator.close()


async def test_an_unreachable_postgresql_fails_once_the_timeout_has_passed() -> None:
    url = f"postgresql+asyncpg://127.0.0.1:{free_port()}/x"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"not reachable after {TIMEOUT_S:g} s"):
        await open_store(url, timeout_s=TIMEOUT_S)
    assert TIMEOUT_S - 0.1 <= time.monotonic() - started < TIMEOUT_S + 2


# pymongo may leave the refused socket of its server monitor to the garbage collector; collect
# it here, where its ResourceWarning is expected, rather than in whichever test runs next.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_an_unreachable_mongodb_fails_once_the_timeout_has_passed_not_after_30_s() -> None:
    url = f"mongodb://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match=f"not reachable after {TIMEOUT_S:g} s"):
        await open_store(url, timeout_s=TIMEOUT_S)
    assert TIMEOUT_S - 0.1 <= time.monotonic() - started < TIMEOUT_S + 2  # pymongo's own: 30 s
    gc.collect()


async def test_an_unreachable_redis_fails_once_the_timeout_has_passed() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(CoordinatorUnavailable, match=f"not reachable after {TIMEOUT_S:g} s"):
        await open_coordinator(url, "latlab-test", timeout_s=TIMEOUT_S)
    assert TIMEOUT_S - 0.1 <= time.monotonic() - started < TIMEOUT_S + 2
