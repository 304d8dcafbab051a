"""LatLab: latency experiments and load runs against HTTP services."""

__version__ = "0.1.0"
