"""``ProbeClient``: what every probe of a process shares, owned by the app's lifespan."""

from __future__ import annotations

import ssl

from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget, tls_context


class ProbeClient:
    """Hands out probers that share TLS contexts (one per verify mode, built once)."""

    def __init__(self, *, ca_file: str | None = None) -> None:
        self._ca_file = ca_file
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def tls_context(self, verify: bool) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            context = self._contexts[verify] = tls_context(verify, self._ca_file)
        return context

    def prober(self, target: ProbeTarget) -> HttpProber:
        if target.scheme != "https":
            return HttpProber(target)
        return HttpProber(target, self.tls_context(target.verify_tls))

    async def probe_once(self, target: ProbeTarget) -> Exchange:
        prober = self.prober(target)
        try:
            return await prober.probe()
        finally:
            await prober.aclose()
