"""Host and Origin header checks: which names count as this machine, which origins as our own.

Pure functions over header values: the control API's middleware and the pipeline client's guard
both judge requests with them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(host: str) -> tuple[str, int | None] | None:
    """``name[:port]`` -> (lowercase name, port), ``[::1]:80`` -> ("::1", 80); None if malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    elif host.count(":") > 1:  # a bare IPv6 address, no port
        name, port_text = host, ""
    else:
        name, _, port_text = host.partition(":")
    if not name:
        return None
    if not port_text:
        return name, None
    if not port_text.isdigit() or int(port_text) > 65535:
        return None
    return name, int(port_text)


def is_loopback_name(name: str) -> bool:
    """localhost, *.localhost, 127.0.0.0/8 and ::1 (names as :func:`split_host` returns them)."""
    if name in ("localhost", "localhost.") or name.endswith((".localhost", ".localhost.")):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, allowed_hosts: Collection[str]) -> bool:
    """Whether a ``Host`` header names this machine or a host the operator listed."""
    parts = split_host(host) if host else None
    if host is None or parts is None:
        return False
    name, _port = parts
    if is_loopback_name(name):
        return True
    # An entry names a host (any port) or a host and port.
    return name in allowed_hosts or host.strip().lower() in allowed_hosts


def same_origin(origin: str, host: str | None) -> bool:
    """Whether an ``Origin`` header names the site the request was sent to (its ``Host``).

    ``null`` (sandboxed frames, some redirects) and anything unparsable count as foreign.
    """
    try:
        parts = urlsplit(origin.strip().lower())
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or host is None:
        return False
    target = split_host(host)
    if target is None:
        return False
    # A Host without a port was reached on the default port of the scheme the page used.
    default = DEFAULT_PORTS[parts.scheme]
    target_name, target_port = target
    return (parts.hostname, origin_port or default) == (target_name, target_port or default)


MAX_HOSTS_SEEN = 1024


class HostCheck:
    """:func:`host_allowed` with the operator's list, remembering its answers: parsing an
    address costs more than all the other checks of a request."""

    def __init__(self, allowed_hosts: Collection[str]) -> None:
        self.allowed_hosts = frozenset(host.strip().lower() for host in allowed_hosts)
        self._seen: dict[str | None, bool] = {}

    def __call__(self, host: str | None) -> bool:
        allowed = self._seen.get(host)
        if allowed is None:
            allowed = host_allowed(host, self.allowed_hosts)
            if len(self._seen) >= MAX_HOSTS_SEEN:  # a client inventing Hosts gains nothing
                self._seen.clear()
            self._seen[host] = allowed
        return allowed
