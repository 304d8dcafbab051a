"""Built-in HTTP targets that latency experiments can be pointed at."""

from latlab.targets.server import serve_targets, start_targets

__all__ = ["serve_targets", "start_targets"]
