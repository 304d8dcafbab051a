"""``ProbeClient``: what every probe of a process shares, owned by the app's lifespan."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget, probe_once, tls_context
from latlab.measure.policy import TargetPolicy

if TYPE_CHECKING:
    from latlab.settings import Settings


class ProbeClient:
    """Hands out probers that share TLS contexts (one per verify mode, built once) and the
    target policy every connection is checked against (the built-in one by default)."""

    def __init__(self, *, ca_file: str | None = None, policy: TargetPolicy | None = None) -> None:
        self._ca_file = ca_file
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self.policy = policy if policy is not None else TargetPolicy()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeClient:
        return cls(ca_file=settings.probe_ca_file, policy=TargetPolicy.from_settings(settings))

    def tls_context(self, verify: bool) -> ssl.SSLContext:
        context = self._contexts.get(verify)
        if context is None:
            context = self._contexts[verify] = tls_context(verify, self._ca_file)
        return context

    def _tls(self, target: ProbeTarget) -> ssl.SSLContext | None:
        return self.tls_context(target.verify_tls) if target.scheme == "https" else None

    def prober(self, target: ProbeTarget) -> HttpProber:
        return HttpProber(target, self._tls(target), self.policy)

    async def probe_once(self, target: ProbeTarget) -> Exchange:
        return await probe_once(target, self._tls(target), self.policy)
