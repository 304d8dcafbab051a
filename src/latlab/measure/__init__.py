"""Measurement primitives: timing single HTTP exchanges."""

from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget, probe_once

__all__ = ["Exchange", "HttpProber", "ProbeTarget", "probe_once"]
