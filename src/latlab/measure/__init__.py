"""Measurement primitives: timing single HTTP exchanges."""

from latlab.measure.http_probe import Exchange, HttpProber, ProbeTarget, probe_once
from latlab.measure.policy import TargetPolicy

__all__ = ["Exchange", "HttpProber", "ProbeTarget", "TargetPolicy", "probe_once"]
