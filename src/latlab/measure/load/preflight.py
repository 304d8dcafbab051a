"""Before a run: where to send (resolved once, judged by the target policy) and whether
anything answers there, so that a refused or unreachable target costs not one request.

Workers connect to the address chosen here, so a name that re-resolves elsewhere during the
run (DNS rebinding) changes nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl

from latlab.measure.http_probe import describe_error
from latlab.measure.load.plan import PlanError
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import Url


class TargetRefused(PlanError):
    """The target policy refuses every address of the target (a usage error: exit 2)."""


class TargetUnreachable(RuntimeError):
    """Nothing answers at the target (exit 1)."""


async def resolve_target(url: Url, policy: TargetPolicy) -> tuple[int, str]:
    """The first address of ``url``'s host that the policy allows, as ``(family, address)``."""
    try:
        literal = ipaddress.ip_address(url.host)
    except ValueError:
        literal = None
    if literal is not None:
        family = int(socket.AF_INET6 if literal.version == 6 else socket.AF_INET)
        addresses = [(family, str(literal))]
    else:
        addresses = await _resolve(url)
    refusals: list[str] = []
    for family, address in addresses:
        refusal = policy.refusal_of_text(address, url.port)
        if refusal is None:
            return family, address
        refusals.append(f"{address} ({refusal})")
    raise TargetRefused(f"target not allowed: {', '.join(refusals)}")


async def _resolve(url: Url) -> list[tuple[int, str]]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetUnreachable(f"cannot resolve {url.host}: {describe_error(exc)}") from None
    return [(int(family), str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


async def check_reachable(
    url: Url, address: tuple[int, str], tls: ssl.SSLContext | None, timeout_s: float
) -> None:
    """Open (and, for https, handshake) one connection, then close it."""
    family, host = address
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(
                host,
                url.port,
                family=family,
                ssl=tls,
                server_hostname=url.host if tls is not None else None,
            )
    except TimeoutError:
        raise TargetUnreachable(f"cannot reach {url}: no answer within {timeout_s} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise TargetUnreachable(f"cannot reach {url}: {describe_error(exc)}") from None
    writer.transport.abort()
