from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from harness import bound_port, run_api, start_targets
from heap import freeze_heap
from latlab.settings import Settings
from latlab.storage import Store, open_store
from services import free_port, mongo_server, postgres_database, truncate_postgres

STORE_KINDS = ["memory", "sqlite", "postgres", "mongo"]
BOT_TICK_S = 0.05


@pytest.hookimpl(trylast=True)  # after the module's fixtures are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """What is still alive between two test modules mostly lives on to the end, and every full
    collection would walk it again (tests/heap.py): out of their reach it goes."""
    if nextitem is None or getattr(nextitem, "module", None) is not getattr(item, "module", None):
        freeze_heap()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def mongo_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mongo_server(tmp_path_factory.mktemp("mongo") / "data") as url:
        yield url


@pytest.fixture
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL naming an empty store of the kind the test is parametrized with."""
    kind = getattr(request, "param", "sqlite")
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'latlab.db'}"
    if kind == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        await truncate_postgres(url)
        return url
    base: str = request.getfixturevalue("mongo_base_url")
    return f"{base}/t_{secrets.token_hex(4)}"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await open_store(store_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def targets_port() -> AsyncIterator[int]:
    """LatLab's own targets server on a free loopback port."""
    server = await start_targets("127.0.0.1", 0)
    try:
        yield bound_port(server)
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The control API on a real uvicorn server, with a fresh store of the test's kind."""
    async with run_api(
        Settings(storage_url=store_url, probe_timeout_s=5, freeze_gc=False)
    ) as client:
        yield client


@pytest.fixture
def frozen_heap() -> None:
    """For a test that asserts on timing in this process: the heap so far is out of the
    collector's passes (tests/heap.py), so that none of them stalls what is measured."""
    freeze_heap()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    return free_port()
