"""The request builder shared by experiments and load runs: a URL, a method, headers and a
body checked once and turned into the bytes sent, prepared before the first send.

Everything that could split the request line or a header is refused here, with a message
that names the part; ``Content-Length`` and ``Connection`` are the client's to set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from latlab import __version__

Scheme = Literal["http", "https"]
DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443}
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token
_RESERVED = frozenset({"content-length", "connection", "transfer-encoding"})
_NO_BODY = frozenset({"GET", "HEAD"})


class RequestError(ValueError):
    """A URL, method, header or body that cannot be sent; the message says which."""


@dataclass(frozen=True, slots=True)
class Url:
    scheme: Scheme
    host: str  # a name or an IP literal, without brackets
    port: int
    target: str  # path and query, as sent on the request line

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def parse_url(text: str) -> Url:
    """An absolute http(s) URL; a missing scheme reads as http, a missing path as ``/``."""
    if not text.isascii() or any(c.isspace() or ord(c) < 32 for c in text):
        raise RequestError(f"URL must be ASCII without spaces: {text!r}")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in DEFAULT_PORTS:
        raise RequestError(f"scheme must be http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise RequestError("credentials in the URL are not supported; send a header")
    try:
        port = parts.port
    except ValueError:
        raise RequestError(f"bad port in URL: {text!r}") from None
    host = parts.hostname
    if not host:
        raise RequestError(f"URL has no host: {text!r}")
    if port == 0:
        raise RequestError("port must be 1-65535")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    scheme: Scheme = "https" if parts.scheme == "https" else "http"
    return Url(scheme, host, port or DEFAULT_PORTS[scheme], target)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """What to send, apart from where: method, headers (in order) and body."""

    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _TOKEN.match(self.method) or self.method != self.method.upper():
            raise RequestError(f"bad method {self.method!r}: an upper-case HTTP token")
        for name, value in self.headers:
            _check_header(name, value)
        object.__setattr__(self, "_names", frozenset(n.lower() for n, _ in self.headers))
        if self.body and self.method in _NO_BODY:
            raise RequestError(f"a {self.method} request has no body")

    def encode(self, url: Url, *, keep_alive: bool) -> bytes:
        """The request's bytes, built once and sent as they are."""
        lines = [f"{self.method} {url.target} HTTP/1.1"]
        if "host" not in self._names:
            lines.append(f"Host: {url.authority}")
        if "user-agent" not in self._names:
            lines.append(f"User-Agent: latlab/{__version__}")
        if "accept" not in self._names:
            lines.append("Accept: */*")
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.body or self.method not in _NO_BODY:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body


def _check_header(name: str, value: str) -> None:
    if not _TOKEN.match(name):
        raise RequestError(f"bad header name {name!r}")
    if name.lower() in _RESERVED:
        raise RequestError(f"header {name} is set by LatLab")
    if any(c in value for c in "\r\n\0") or not value.isascii():
        raise RequestError(f"header {name} has a line break or a non-ASCII character")


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as given to ``-H``."""
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise RequestError(f"header must be 'Name: value', not {text!r}")
    name, value = name.strip(), value.strip()
    _check_header(name, value)
    return name, value


_STATUS_ITEM = re.compile(r"([1-5])xx|[1-5][0-9][0-9]")


@dataclass(frozen=True, slots=True)
class ExpectedStatus:
    """The statuses a response may have to count as a success: ``200,201``, ``2xx``."""

    text: str  # normalised: items lower-case, comma-separated without spaces
    codes: frozenset[int]

    def __contains__(self, status_code: object) -> bool:
        return status_code in self.codes

    def __str__(self) -> str:
        return self.text


def parse_expect_status(text: str) -> ExpectedStatus:
    """``"200,201"``, ``"2xx"`` or both (``"2xx, 301"``); codes 100-599."""
    items = [item.strip().lower() for item in text.split(",")]
    codes: set[int] = set()
    for item in items:
        match = _STATUS_ITEM.fullmatch(item)
        if match is None:
            raise RequestError(f"bad expected status {item!r}: a code 100-599 or a class like 2xx")
        if match.group(1):
            first = int(match.group(1)) * 100
            codes.update(range(first, first + 100))
        else:
            codes.add(int(item))
    return ExpectedStatus(",".join(items), frozenset(codes))
