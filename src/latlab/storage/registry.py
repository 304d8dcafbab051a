"""Pick a store adapter by URL scheme; import it only when it is used."""

from __future__ import annotations

from latlab.storage.base import Store


class UnsupportedStorageURL(ValueError):
    pass


_SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
_MONGO_SCHEMES = ("mongodb", "mongodb+srv")


# Plain scheme names mean the async driver LatLab ships with.
_ALIASES = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def normalize_url(url: str) -> str:
    """The URL with its scheme lower-cased and aliases resolved; raise if it has no scheme."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnsupportedStorageURL(f"storage URL {url!r} has no scheme (e.g. sqlite+aiosqlite://)")
    scheme = scheme.lower()
    return f"{_ALIASES.get(scheme, scheme)}://{rest}"


async def open_store(url: str) -> Store:
    """Open (and migrate where needed) the store that ``url`` names."""
    url = normalize_url(url)
    scheme = url.partition("://")[0]
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
