"""``latlab load --probe``: beside the load, one fresh-connection probe every interval.

It answers what no load tool does: what latency does a *new* client see while the service is
under this load? The probe is LatLab's experiment prober (a new connection each time, the
same request as the load), on the parent's event loop, which has little else to do; its
latencies go to a histogram of their own and are reported apart from the load's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from time import perf_counter
from typing import Any

from latlab.measure.http_probe import ProbeTarget, probe_once
from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.summary import latency_summary
from latlab.measure.policy import TargetPolicy
from latlab.measure.request import RequestSpec
from latlab.measure.stats import LatencyHistogram


class SideProbe:
    """``--probe``: one fresh-connection probe every ``interval_s`` beside the load, by
    LatLab's experiment prober, into a histogram of its own: what a *new* client sees."""

    def __init__(
        self,
        plan: LoadPlan,
        address: tuple[int, str],
        tls: ssl.SSLContext | None,
        policy: TargetPolicy,
        interval_s: float,
    ) -> None:
        url = plan.url
        # The address the run resolved, as the load uses; but TLS checks the certificate
        # against the name, so an https name is resolved again (the policy judges that too).
        host = url.host if url.scheme == "https" and not _is_literal(url.host) else address[1]
        headers = plan.request.headers
        if host != url.host and not any(name.lower() == "host" for name, _ in headers):
            headers = (("Host", url.authority), *headers)
        request = RequestSpec(plan.request.method, headers, plan.request.body)
        self._target = ProbeTarget(
            host,
            url.port,
            url.target,
            url.scheme,
            plan.timeout_s,
            plan.verify_tls,
            request=request,
        )
        self._plan, self._tls, self._policy = plan, tls, policy
        self.interval_s = interval_s
        self.histogram = LatencyHistogram()
        self._task: asyncio.Task[None] | None = None

    def start(self, first_s: float) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe_from(first_s))

    async def stop(self) -> None:
        """Stop; a probe still in flight is not counted (as the load's requests are not)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _probe_from(self, next_s: float) -> None:
        while True:
            await asyncio.sleep(max(0.0, next_s - perf_counter()))
            exchange = await probe_once(self._target, self._tls, self._policy)
            error = exchange.error
            if error is None and not self._plan.succeeded(exchange.status_code):
                error = f"bad status {exchange.status_code}"
            self.histogram.record(exchange.latency_ms, error)
            # On a fixed grid; the ticks a slow probe overran are skipped, not bunched up.
            behind_s = perf_counter() - next_s
            next_s += self.interval_s * max(1, int(behind_s // self.interval_s) + 1)

    def summary(self) -> dict[str, Any]:
        stats = self.histogram.stats()
        return {
            "interval_s": self.interval_s,
            "count": stats.count,
            "errors": stats.errors,
            **latency_summary(stats),
            "errors_by_kind": {kind: n for kind, n in stats.errors_by_kind.items() if n},
        }


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
