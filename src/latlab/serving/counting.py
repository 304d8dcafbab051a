"""The layout of a server's request counts: one cell per method and status class.

The server owns this layout, so a service that keeps counters of its own (the targets'
shared table) puts these cells first and hands the connections that list; counting then
costs one list store per answer, with no call into the service on the hot path.
"""

from __future__ import annotations

METHODS = ("GET", "HEAD", "POST", "other")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
REQUEST_CELLS = len(METHODS) * len(STATUS_CLASSES)
METHOD_INDEX = {name.encode(): index for index, name in enumerate(METHODS[:-1])}
OTHER_METHOD = len(METHODS) - 1


def request_cell(method_index: int, status: int) -> int:
    """Where the answers of one method and status class are counted (method-major)."""
    return method_index * len(STATUS_CLASSES) + status // 100 - 1


def request_counts() -> list[int]:
    """Counts for a server whose owner keeps no other counters."""
    return [0] * REQUEST_CELLS
