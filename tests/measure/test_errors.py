from __future__ import annotations

import pytest

from latlab.measure.errors import error_kind


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("connection refused", "refused"),
        ("network is unreachable", "refused"),
        ("no route to host", "refused"),
        ("no address to connect to", "refused"),
        ("connection reset", "reset"),
        ("broken pipe", "reset"),
        ("timeout after 10.0 s", "timeout"),
        ("connection timed out", "timeout"),
        ("DNS: Name or service not known", "dns"),
        ("TLS: certificate verify failed (self-signed certificate)", "tls"),
        ("invalid HTTP response: Invalid constant string", "protocol"),
        ("server closed connection without response", "protocol"),
        ("connection closed before response complete", "protocol"),
        ("too many open files", "protocol"),
        ("target not allowed: 169.254.169.254 is link-local", "target_not_allowed"),
        ("bad status 503", "bad_status"),
    ],
)
def test_each_failure_text_has_its_kind(text: str, kind: str) -> None:
    assert error_kind(text) == kind
