"""Which addresses LatLab may send traffic to.

Checked twice: when an experiment names an address literal (a 422 at creation), and on every
resolved address right before a probe connects, so a name that resolves to a refused address
(DNS rebinding included) is never connected to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latlab.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOCAL_CACHE_SIZE = 1024


# IPv6 prefixes whose last 32 bits are an IPv4 address the packet reaches (or is routed to).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, but some stacks still route it
# Cloud metadata services outside 169.254.0.0/16: AWS over IPv6, Alibaba Cloud.
_METADATA = (ipaddress.ip_network("fd00:ec2::254/128"), ipaddress.ip_network("100.100.100.200/32"))
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def plain_address(address: IPAddress) -> IPAddress:
    """An IPv6 address that carries an IPv4 one (``::ffff:a.b.c.d``, 6to4, NAT64, …) is
    judged as that IPv4 address, which is what it reaches."""
    if isinstance(address, ipaddress.IPv4Address):
        return address
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is not None:
        return embedded
    if address in _NAT64 or address in _TRANSLATED or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address


def _builtin_refusal(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "unspecified address"
    if address.is_link_local:  # 169.254.0.0/16 holds the cloud metadata service
        return "link-local address"
    if address.is_multicast:
        return "multicast address"
    if address == _BROADCAST:
        return "broadcast address"
    if any(address in network for network in _METADATA if network.version == address.version):
        return "cloud metadata service"
    return None


def _bindable(address: IPAddress) -> bool:
    """Whether ``address`` is one of this machine's own (the kernel lets us bind it)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((str(address), 0))
        except OSError:
            return False
    return True


class TargetPolicy:
    """Explicit denies beat allows, allows beat the built-in denies, and a non-empty allow
    list refuses everything outside it. Built in: link-local, unspecified and multicast
    addresses, and the control API's own port on any address of this machine."""

    def __init__(
        self,
        *,
        deny: Iterable[str] = (),
        allow: Iterable[str] = (),
        api_port: int | None = None,
    ) -> None:
        self._deny: list[IPNetwork] = [ipaddress.ip_network(cidr, strict=False) for cidr in deny]
        self._allow: list[IPNetwork] = [ipaddress.ip_network(cidr, strict=False) for cidr in allow]
        self._api_port = api_port or None  # port 0: the API's port is not known
        self._local: dict[IPAddress, bool] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TargetPolicy:
        return cls(deny=settings.targets_deny, allow=settings.targets_allow, api_port=settings.port)

    def refusal(self, address: IPAddress, port: int) -> str | None:
        """Why LatLab must not connect to ``address``:``port``, or None if it may."""
        address = plain_address(address)
        denied = _containing(self._deny, address)
        if denied is not None:
            return f"denied by LATLAB_TARGETS_DENY {denied}"
        if self._allow:
            allowed = _containing(self._allow, address) is not None
            return None if allowed else "not in LATLAB_TARGETS_ALLOW"
        builtin = _builtin_refusal(address)
        if builtin is not None:
            return builtin
        if port == self._api_port and self._is_local(address):
            return f"port {port} is LatLab's own control API"
        return None

    def refusal_of_text(self, address: str, port: int) -> str | None:
        """:meth:`refusal` of an address as text (a resolved ``sockaddr[0]``)."""
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return "not an IP address"
        return self.refusal(parsed, port)

    def _is_local(self, address: IPAddress) -> bool:
        if address.is_loopback or address.is_unspecified:
            return True
        local = self._local.get(address)
        if local is None:
            if len(self._local) >= _LOCAL_CACHE_SIZE:
                self._local.clear()
            # A bare address: a scope id (fe80::1%eth0) is not needed to know it is ours.
            local = self._local[address] = _bindable(_unscoped(address))
        return local


def _unscoped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(int(address))
    return address


def _containing(networks: list[IPNetwork], address: IPAddress) -> IPNetwork | None:
    for network in networks:
        if address.version == network.version and address in network:
            return network
    return None
