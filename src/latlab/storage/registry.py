"""Pick a store adapter by URL scheme; import it only when it is used."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable

from latlab.storage.base import Store, StoreUnavailable


class UnsupportedStorageURL(ValueError):
    pass


_SQL_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")
_MONGO_SCHEMES = ("mongodb", "mongodb+srv")
_SCHEMES = ("memory", *_SQL_SCHEMES, *_MONGO_SCHEMES)


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


# The driver each scheme needs, and the extra that installs it.
_DRIVERS = {
    "postgresql+asyncpg": ("asyncpg", "postgres"),
    "mongodb": ("pymongo", "mongo"),
    "mongodb+srv": ("pymongo", "mongo"),
}
# A driver that ignores its own timeout is cut this long after the deadline.
_GRACE_S = 0.25

Opener = Callable[[], Awaitable[Store]]


def check_url(url: str) -> str:
    """The URL normalized, if this installation can open such a store (nothing imported);
    raise :class:`UnsupportedStorageURL` if not."""
    url = normalize_url(url)
    scheme = url.partition("://")[0]
    if scheme not in _SCHEMES:
        known = ", ".join(_SCHEMES)
        raise UnsupportedStorageURL(
            f"unsupported storage URL scheme {scheme!r}; use one of: {known}"
        )
    module, extra = _DRIVERS.get(scheme, ("", ""))
    if module and importlib.util.find_spec(module) is None:
        raise UnsupportedStorageURL(
            f"{scheme}:// needs the {module} package: pip install 'latlab[{extra}]'"
        )
    return url


def _opener(url: str, timeout_s: float | None) -> Opener:
    """How to open the store ``url`` (checked) names; the adapter is imported here."""
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from latlab.storage.memory import MemoryStore

        async def memory() -> Store:
            return MemoryStore()

        return memory
    if scheme in _SQL_SCHEMES:
        from latlab.storage.sql.store import SqlStore

        return lambda: SqlStore.open(url)
    if scheme in _MONGO_SCHEMES:
        from latlab.storage.mongo import MongoStore

        return lambda: MongoStore.open(url, timeout_s=timeout_s)
    raise AssertionError(f"check_url let {scheme!r} through")


def where(url: str) -> str:
    """The URL without credentials or options: what to name in an error."""
    scheme, _, rest = url.partition("://")
    location = rest.rpartition("@")[2].split("?", 1)[0]
    return f"{scheme}://{location}"


async def open_store(url: str, timeout_s: float | None = None) -> Store:
    """Open (and migrate where needed) the store that ``url`` names.

    With ``timeout_s``, keep trying while the store cannot be reached (a database starting
    beside LatLab) and raise :class:`StoreUnavailable` once that long has passed; without it,
    try once.
    """
    url = check_url(url)
    opener = _opener(url, timeout_s)
    if timeout_s is None:
        return await opener()
    return await _until_reachable(opener, timeout_s, where(url))


async def _until_reachable(opener: Opener, timeout_s: float, location: str) -> Store:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    delay_s = 0.05
    cause = "no answer"
    while True:
        try:
            async with asyncio.timeout_at(deadline + _GRACE_S):
                return await opener()
        except (StoreUnavailable, TimeoutError) as exc:
            cause = _brief(exc) or cause  # the guard's own timeout says nothing new
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise StoreUnavailable(
                    f"{location} is not reachable after {timeout_s:g} s ({cause})"
                ) from exc
        await asyncio.sleep(min(delay_s, remaining_s))  # the last try at the deadline
        delay_s = min(delay_s * 2, 0.5)


def _brief(exc: BaseException, limit: int = 120) -> str:
    """The driver's own words (not the adapter's wrapper) on one short line, or ""."""
    lines = str(exc.__cause__ or exc).splitlines()
    text = lines[0] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
