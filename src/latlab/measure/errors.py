"""The kinds of failed request, one list for experiments and load runs alike.

A failed probe is stored with a human text (``Exchange.error``); its kind is derived from
that text, so stats recounted from stored results and stats kept while probing agree. A
response that fails an experiment's check is a failure too: its text starts with the check's
field (``expect_status: got 503, not 2xx``), a bad status, or else an ``assertion``.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

ErrorKind = Literal[
    "refused",
    "reset",
    "timeout",
    "dns",
    "tls",
    "protocol",
    "bad_status",
    "assertion",
    "target_not_allowed",
]
ERROR_KINDS: Final[tuple[ErrorKind, ...]] = get_args(ErrorKind)

# First match wins; texts are those ``measure.http_probe`` writes (lower-cased OS errors).
_BY_PREFIX: tuple[tuple[str, ErrorKind], ...] = (
    ("timeout", "timeout"),
    ("dns:", "dns"),
    ("tls:", "tls"),
    ("target not allowed", "target_not_allowed"),
    ("bad status", "bad_status"),
    ("expect_status:", "bad_status"),
    ("expect_", "assertion"),  # expect_body_contains, expect_max_latency_ms
)
_BY_WORD: tuple[tuple[str, ErrorKind], ...] = (
    ("timed out", "timeout"),
    ("refused", "refused"),
    ("unreachable", "refused"),
    ("no route", "refused"),
    ("no address", "refused"),
    ("reset", "reset"),
    ("broken pipe", "reset"),
    ("aborted", "reset"),
)


def error_kind(error: str) -> ErrorKind:
    """The kind of a failure from its text; what the connection did not explain is ``protocol``
    (a malformed or cut-short response, or a local error such as too many open files)."""
    text = error.lower()
    for prefix, kind in _BY_PREFIX:
        if text.startswith(prefix):
            return kind
    for word, kind in _BY_WORD:
        if word in text:
            return kind
    return "protocol"
