"""URL and file settings checked before anything opens them: one line naming the setting,
never a password; every URL the rest of the suite uses still passes.

The processes that print those lines are in test_startup_errors.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from latlab.cli.startup import BAD_CONFIGURATION, StartupError, explain
from latlab.settings import Settings
from latlab.storage.registry import (
    UnsupportedStorageURL,
    UnusableStorage,
    check_url,
    open_store,
)


def refusal(**values: Any) -> StartupError:
    """The one line ``latlab serve`` would print for these settings."""
    with pytest.raises(ValidationError) as invalid:
        Settings(**values)
    failure = explain(invalid.value)
    assert failure is not None
    assert failure.exit_code == BAD_CONFIGURATION
    assert "\n" not in str(failure)
    return failure


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///./latlab.db",
        "sqlite:///x.db",
        "sqlite+aiosqlite:///x.db?timeout=0.2",
        "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
        "postgresql+asyncpg://u:p:with:colons@[::1]:5432/db",
        "postgres://u@h/db",
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
        "mongodb://h1:27017,h2:27018/db",
        "mongodb://a%3Ab:c%40d@[::1]:27017/db",
    ],
)
def test_storage_urls_in_use_pass_the_check(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql+asyncpg://u:s3cret@127.0.0.1:abc/db", "port 'abc' of"),
        ("postgresql+asyncpg://u:s3cret@127.0.0.1:70000/db", "port '70000' of"),
        ("postgresql+asyncpg://u:s3@cret@127.0.0.1/db", "percent-encode"),
        ("mongodb://a:s3:cret@127.0.0.1/db", "percent-encode"),
        ("mongodb://a:s3/cret@127.0.0.1/db", "percent-encode"),
        ("mongodb://u:s3cret@h1:1,h2:x/db", "port 'x' of"),
    ],
)
def test_a_malformed_storage_url_is_refused_without_its_password(url: str, words: str) -> None:
    with pytest.raises(UnsupportedStorageURL) as refused:
        check_url(url)
    assert words in str(refused.value)
    assert "s3" not in str(refused.value)
    assert "cret" not in str(refused.value)


async def test_a_url_only_the_driver_finds_malformed_is_refused_before_connecting() -> None:
    for url, words in [
        ("postgresql+asyncpg://127.0.0.1:/db", "is not a valid URL"),
        ("mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=soon", "must be an integer"),
        ("mongodb://127.0.0.1:9/?noSuchOption=1", "Unknown option"),
    ]:
        with pytest.raises(UnsupportedStorageURL, match=words):
            await open_store(url, timeout_s=30)  # no wait: nothing was tried


async def test_a_file_that_is_not_a_sqlite_database_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"not a database\n" * 100)
    with pytest.raises(UnusableStorage) as refused:
        await open_store(f"sqlite+aiosqlite:///{notes}", timeout_s=30)
    assert f"{notes} is not a SQLite database" in str(refused.value)
    assert notes.read_bytes() == b"not a database\n" * 100  # left as it was


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:1/2", "redis://[::1]:6379", "unix:///r.sock"]
)
def test_redis_urls_in_use_pass_the_check(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://x", "unsupported Redis URL scheme 'http'; use one of: redis://"),
        ("redis://:s3cret@127.0.0.1:abc/0", "port 'abc' of 127.0.0.1:abc is not a number"),
        ("redis://:s3cret@127.0.0.1:99999/0", "port '99999'"),
        ("redis://:s3cret@127.0.0.1/0?socket_timeout=soon", "socket_timeout"),
    ],
)
def test_a_malformed_redis_url_is_named_without_its_password(url: str, words: str) -> None:
    line = str(refusal(redis_url=url))
    assert line.startswith("LATLAB_REDIS_URL=")
    assert words in line
    assert "s3cret" not in line
    assert "Value error" not in line  # pydantic's prefix says nothing


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8086", "https://influx.lab/", "http://u:p@[::1]:8086/prefix"]
)
def test_influx_urls_in_use_pass_the_check(url: str) -> None:
    assert Settings(influx_url=url).influx_url == url


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8086", "notaurl", "http://", "ftp://h", "http://u:s3cret@h:abc"]
)
def test_a_malformed_influx_url_is_named_with_an_example(url: str) -> None:
    line = str(refusal(influx_url=url))
    assert line.startswith("LATLAB_INFLUX_URL=")
    assert "e.g. http://127.0.0.1:8086" in line
    assert "s3cret" not in line


def test_a_ca_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    not_pem = tmp_path / "notes.pem"
    not_pem.write_text("not a certificate\n")
    for path, words in [
        (tmp_path / "missing.pem", "No such file or directory"),
        (tmp_path, "Is a directory"),
        (not_pem, "no PEM CA certificate"),
    ]:
        line = str(refusal(probe_ca_file=str(path)))
        assert line.startswith("LATLAB_PROBE_CA_FILE='/")
        assert f"{path.name}': " in line  # a long path is shortened in its middle
        assert words in line


def test_a_ca_file_of_pem_certificates_passes(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    assert Settings(probe_ca_file=str(ca_file)).probe_ca_file == str(ca_file)
