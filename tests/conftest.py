from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from services import mongo_server, postgres_database, truncate_postgres

from latlab.storage import Store, open_store

STORE_KINDS = ["memory", "sqlite", "postgres", "mongo"]


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
