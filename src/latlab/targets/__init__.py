"""Built-in HTTP targets: /test, the sum server, /api/latency and calibration endpoints.

They serve on ``latlab.serving``'s HTTP/1.1 server; this package holds their routes and
state (the /test queue and its tickets, the counters, /metrics, the InfluxDB reporter).
"""

from latlab.targets.server import TargetsServer, open_targets

__all__ = ["TargetsServer", "open_targets"]
