"""Pick a store adapter by URL scheme; import it only when it is used."""

from __future__ import annotations

from latlab.storage.base import Store


class UnsupportedStorageURL(ValueError):
    pass


_SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
_MONGO_SCHEMES = ("mongodb", "mongodb+srv")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise UnsupportedStorageURL(f"storage URL {url!r} has no scheme (e.g. sqlite+aiosqlite://)")
    return scheme.lower()


async def open_store(url: str) -> Store:
    """Open (and migrate where needed) the store that ``url`` names."""
    scheme = _scheme(url)
    if scheme == "memory":
        from latlab.storage.memory import MemoryStore

        return MemoryStore()
    if scheme in _SQL_SCHEMES:
        from latlab.storage.sql.store import SqlStore

        return await SqlStore.open(url)
    if scheme in _MONGO_SCHEMES:
        from latlab.storage.mongo import MongoStore

        return await MongoStore.open(url)
    known = ", ".join(("memory", *_SQL_SCHEMES, *_MONGO_SCHEMES))
    raise UnsupportedStorageURL(f"unsupported storage URL scheme {scheme!r}; use one of: {known}")
