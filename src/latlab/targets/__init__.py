"""Built-in HTTP targets: /test, the sum server, /api/latency and calibration endpoints."""

from latlab.targets.server import TargetsServer, open_targets, start_targets

__all__ = ["TargetsServer", "open_targets", "start_targets"]
