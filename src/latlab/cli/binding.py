"""Where the servers listen: refuse an open API on the network, and bind before anything starts.

The API's socket is bound (not yet listening) before the store is opened and jobs resume, so a
port in use is a one-line error with nothing to undo, and clients see "refused" rather than a
hang until the API answers.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from dataclasses import dataclass

from latlab.cli.startup import StartupError
from latlab.settings import Settings


@dataclass(frozen=True, slots=True)
class Listen:
    """A bind address and the settings (variable / option) that choose it, for messages."""

    host: str
    port: int
    host_setting: str
    port_setting: str


def api_listen(settings: Settings) -> Listen:
    return Listen(settings.host, settings.port, "LATLAB_HOST / --host", "LATLAB_PORT / --port")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (also IPv4-mapped) or ``localhost``: only this machine can connect."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a name: it may resolve anywhere
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def has_token(settings: Settings) -> bool:
    return bool(settings.api_token and settings.api_token.get_secret_value())


def check_exposure(settings: Settings) -> None:
    """Refuse to serve the API beyond this machine without a token, unless told to."""
    if has_token(settings) or settings.insecure or is_loopback(settings.host):
        return
    raise StartupError(
        f"refusing to serve the API on {settings.host} without a token: set LATLAB_API_TOKEN "
        "(or --token), or pass --insecure to serve it to the network unprotected"
    )


def bind(listen: Listen) -> socket.socket:
    """A socket bound to ``listen`` (uvicorn makes it listen); :class:`StartupError` if not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise bind_error(exc, listen) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, listen) from exc
    return sock


def bind_error(exc: OSError, listen: Listen) -> StartupError:
    """The one line for a failed bind, naming the setting to change."""
    where = f"{listen.host}:{listen.port}"
    if isinstance(exc, socket.gaierror):
        why = f"cannot resolve {listen.host!r} ({exc.strerror})"
        return StartupError(f"{why}: fix {listen.host_setting}")
    if exc.errno == errno.EADDRINUSE:
        why = f"port {listen.port} on {listen.host} is already in use"
        todo = f"stop what listens there or choose another port with {listen.port_setting}"
        return StartupError(f"{why}: {todo}")
    if exc.errno == errno.EADDRNOTAVAIL:
        why = f"{listen.host} is not an address of this machine"
        return StartupError(f"{why}: fix {listen.host_setting}")
    if exc.errno == errno.EACCES:
        why = f"no permission to listen on {where} (ports below 1024 need privileges)"
        return StartupError(f"{why}: choose another port with {listen.port_setting}")
    why = f"cannot listen on {where} ({exc.strerror or exc})"
    return StartupError(f"{why}: check {listen.host_setting} and {listen.port_setting}")


def is_bind_error(exc: OSError) -> bool:
    """Whether ``exc`` came from binding (not, say, from opening a file)."""
    bind_errnos = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)
    return isinstance(exc, socket.gaierror) or (exc.filename is None and exc.errno in bind_errnos)


def check_ports(settings: Settings) -> None:
    """Refuse the API and the targets on one port where their addresses meet.

    Checked here rather than left to the targets' bind: the API's socket is bound but not
    listening yet (so clients see "refused" until it answers), and Linux lets a second
    ``SO_REUSEADDR`` socket bind beside one that does not listen, so the targets would take
    the port and the API would start with no one to reach it. Port 0 picks two free ports.
    """
    port = settings.port
    if not settings.targets_enabled or port == 0 or settings.targets_port != port:
        return
    api, targets = _bind_address(settings.host), _bind_address(settings.targets_host)
    if api is None or targets is None:
        return  # an unresolvable host: its bind names the setting
    if api == targets or api.is_unspecified or targets.is_unspecified:
        raise StartupError(
            f"the API and the targets cannot share port {port}: choose another port with "
            "LATLAB_PORT / --port or LATLAB_TARGETS_PORT / --targets-port"
        )


def _bind_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address :func:`bind` would use for ``host`` (IPv4-mapped as IPv4)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return None
    address = ipaddress.ip_address(str(found[0][4][0]).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
