"""Pick a store adapter by URL scheme; import it only when it is used."""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable

from latlab.reachable import until_reachable
from latlab.storage.base import Store, StoreUnavailable


class UnsupportedStorageURL(ValueError):
    pass


class UnusableStorage(UnsupportedStorageURL):
    """The URL is well formed but names something that is not a store (a file that is not
    a SQLite database)."""


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
    if scheme not in ("memory", "sqlite+aiosqlite"):  # a SQLite path may hold anything
        _check_authority(url)
    return url


def _check_authority(url: str) -> None:
    """Credentials and ports as the drivers will parse them, checked before any is imported.

    A message names the URL as :func:`where` does, never the credentials.
    """
    scheme, _, rest = url.partition("://")
    credentials, _, location = rest.split("?", 1)[0].rpartition("@")
    # pymongo refuses these unescaped in a user name or password; a second "@" fools any parser.
    reserved = "/?#[]@" if scheme in _MONGO_SCHEMES else "@"
    if any(char in credentials for char in reserved) or (
        scheme in _MONGO_SCHEMES and credentials.count(":") > 1
    ):
        shown = " ".join(":" + reserved if scheme in _MONGO_SCHEMES else reserved)
        raise UnsupportedStorageURL(
            f"the user name or password in {where(url)} holds a reserved character "
            f"({shown}): percent-encode it (urllib.parse.quote_plus)"
        )
    for host in location.split("/", 1)[0].split(","):
        port = host.rpartition("]")[2].partition(":")[2]
        if port and not (port.isdigit() and int(port) <= 65535):
            raise UnsupportedStorageURL(
                f"port {port!r} of {where(url)} is not a number from 0 to 65535"
            )


def _opener(url: str, timeout_s: float | None) -> Opener:
    """How to open the store ``url`` (checked) names; the adapter is imported here."""
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from latlab.storage.memory import MemoryStore

        async def memory() -> Store:
            return MemoryStore()

        return memory
    if scheme in _SQL_SCHEMES:
        return _sql_opener(url)
    if scheme in _MONGO_SCHEMES:
        from latlab.storage.mongo import MongoStore

        _parse_mongo_url(url)
        return lambda: MongoStore.open(url, timeout_s=timeout_s)
    raise AssertionError(f"check_url let {scheme!r} through")


def _sql_opener(url: str) -> Opener:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DatabaseError

    from latlab.storage.sql.store import SqlStore

    try:
        database = make_url(url).database or ""
    except (ArgumentError, ValueError) as exc:
        raise UnsupportedStorageURL(f"{where(url)} is not a valid URL ({exc})") from None

    async def sql() -> Store:
        try:
            return await SqlStore.open(url)
        except DatabaseError as exc:
            if not _is_not_a_database(exc.orig):
                raise
            raise UnusableStorage(
                f"{database} is not a SQLite database ({exc.orig}): point it at a LatLab "
                "database or a new file"
            ) from exc

    return sql


def _is_not_a_database(error: BaseException | None) -> bool:
    """SQLite's own verdict on a file: not a database at all, or a damaged one."""
    import sqlite3

    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.DatabaseError) and code in (
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CORRUPT,
    )


def _parse_mongo_url(url: str) -> None:
    """pymongo's own parse, before a client exists; not for mongodb+srv://, whose parse
    looks the host up in the DNS (MongoStore.open does that, within the start-up wait)."""
    if url.startswith("mongodb+srv://"):
        return
    from pymongo.errors import ConfigurationError
    from pymongo.uri_parser import parse_uri

    try:
        parse_uri(url)
    except (ConfigurationError, ValueError) as exc:  # a bad option, its bad value, ...
        raise UnsupportedStorageURL(f"{where(url)}: {exc}") from None


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
    location = where(url)

    def gave_up(cause: str) -> StoreUnavailable:
        return StoreUnavailable(f"{location} is not reachable after {timeout_s:g} s ({cause})")

    return await until_reachable(opener, timeout_s, transient=(StoreUnavailable,), gave_up=gave_up)
