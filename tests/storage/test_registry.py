from __future__ import annotations

import gc
import re
from pathlib import Path

import pytest

from latlab.storage import UnsupportedStorageURL, open_store
from latlab.storage.memory import MemoryStore
from latlab.storage.registry import normalize_url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("latlab.db", "has no scheme"),
        ("mysql://root@localhost/x", "unsupported storage URL scheme 'mysql'; use one of: memory"),
    ],
)
async def test_unusable_urls_are_refused_with_the_schemes_to_use(url: str, says: str) -> None:
    with pytest.raises(UnsupportedStorageURL, match=re.escape(says)):
        await open_store(url)


async def test_memory_url_opens_the_memory_store() -> None:
    assert isinstance(await open_store("memory://"), MemoryStore)


async def test_sqlite_in_memory_keeps_one_database_across_connections() -> None:
    store = await open_store("sqlite+aiosqlite:///:memory:")
    try:
        job = await store.create_job("probe", {})
        assert (await store.get_job("probe", job.id)).id == job.id
    finally:
        await store.close()


async def test_sqlite_creates_the_folder_of_its_file(tmp_path: Path) -> None:
    store = await open_store(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'dir' / 'x.db'}")
    await store.close()
    assert (tmp_path / "new" / "dir" / "x.db").exists()


# pymongo may leave the refused socket of its server monitor to the garbage collector; collect
# it here, where its ResourceWarning is expected, rather than in whichever test runs next.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
async def test_an_unreachable_mongodb_fails_at_open() -> None:
    with pytest.raises(Exception, match=re.escape("127.0.0.1:9")):
        await open_store("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300")
    gc.collect()


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("SQLite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("mongodb://h:27017", "mongodb://h:27017"),
    ],
)
def test_plain_scheme_names_mean_the_shipped_async_drivers(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


async def test_a_plain_sqlite_url_opens(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'plain.db'}")
    await store.close()
