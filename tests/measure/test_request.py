"""The shared request builder: URLs, methods, headers and bodies checked once, then bytes."""

from __future__ import annotations

import pytest

from latlab import __version__
from latlab.measure.request import (
    RequestError,
    RequestSpec,
    Url,
    parse_expect_status,
    parse_header,
    parse_url,
)

AGENT = f"User-Agent: latlab/{__version__}\r\n"


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("http://example.com", Url("http", "example.com", 80, "/")),
        ("example.com:8008/sum?a=1", Url("http", "example.com", 8008, "/sum?a=1")),
        ("https://[::1]:8443/x", Url("https", "::1", 8443, "/x")),
        ("https://example.com/", Url("https", "example.com", 443, "/")),
    ],
)
def test_urls_parse_with_default_scheme_port_and_path(text: str, url: Url) -> None:
    assert parse_url(text) == url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (Url("http", "::1", 8008, "/a"), "http://[::1]:8008/a"),
        (Url("https", "example.com", 443, "/"), "https://example.com/"),
    ],
)
def test_url_authority_brackets_ipv6_and_hides_default_ports(url: Url, shown: str) -> None:
    assert str(url) == shown


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ftp://example.com", "scheme must be http or https"),
        ("http://user:pw@example.com", "credentials"),
        ("http://example.com:99999", "bad port"),
        ("http://example.com:0", "port must be 1-65535"),
        ("http:///path", "no host"),
        ("http://exa mple.com", "without spaces"),
        ("http://example.com/\u00e9", "ASCII"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(RequestError, match=says):
        parse_url(text)


def test_a_get_is_sent_with_host_agent_accept_and_connection() -> None:
    sent = RequestSpec().encode(Url("http", "127.0.0.1", 8008, "/a?b=1"), keep_alive=True)
    assert (
        sent
        == (
            f"GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8008\r\n{AGENT}Accept: */*\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode()
    )


def test_a_post_carries_its_headers_in_order_and_a_content_length() -> None:
    spec = RequestSpec("POST", (("Content-Type", "application/json"), ("X-B", "2")), b'{"a":1}')
    sent = spec.encode(Url("http", "example.com", 80, "/sum"), keep_alive=False)
    assert (
        sent
        == (
            f"POST /sum HTTP/1.1\r\nHost: example.com\r\n{AGENT}Accept: */*\r\n"
            "Content-Type: application/json\r\nX-B: 2\r\nContent-Length: 7\r\n"
            'Connection: close\r\n\r\n{"a":1}'
        ).encode()
    )


def test_an_empty_post_says_its_length_is_zero() -> None:
    sent = RequestSpec("POST").encode(Url("http", "h", 80, "/"), keep_alive=False)
    assert b"Content-Length: 0\r\n" in sent


def test_given_host_agent_and_accept_replace_the_defaults() -> None:
    headers = (("host", "virtual.test"), ("User-Agent", "me"), ("Accept", "text/plain"))
    sent = RequestSpec(headers=headers).encode(Url("http", "h", 80, "/"), keep_alive=False)
    assert sent.count(b"Host") + sent.count(b"host") == 1
    assert b"latlab/" not in sent
    assert b"*/*" not in sent


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"method": "get"}, "upper-case HTTP token"),
        ({"method": "GE T"}, "upper-case HTTP token"),
        ({"method": ""}, "upper-case HTTP token"),
        ({"headers": (("Bad Name", "v"),)}, "bad header name"),
        ({"headers": (("X", "a\r\nInjected: 1"),)}, "line break"),
        ({"headers": (("X", "caf\u00e9"),)}, "non-ASCII"),
        ({"headers": (("content-length", "3"),)}, "set by LatLab"),
        ({"headers": (("Connection", "close"),)}, "set by LatLab"),
        ({"headers": (("Transfer-Encoding", "chunked"),)}, "set by LatLab"),
        ({"method": "GET", "body": b"x"}, "a GET request has no body"),
        ({"method": "HEAD", "body": b"x"}, "a HEAD request has no body"),
    ],
)
def test_requests_that_cannot_be_sent_are_refused(fields: dict[str, object], says: str) -> None:
    with pytest.raises(RequestError, match=says):
        RequestSpec(**fields)  # type: ignore[arg-type]


def test_header_option_text_is_split_and_trimmed() -> None:
    assert parse_header(" X-Token :  abc: def ") == ("X-Token", "abc: def")


@pytest.mark.parametrize("text", ["no colon", ": value", "Bad Name: v"])
def test_bad_header_option_text_is_refused(text: str) -> None:
    with pytest.raises(RequestError):
        parse_header(text)


def test_expected_status_reads_codes_classes_and_mixes() -> None:
    expected = parse_expect_status(" 2XX, 301 ")
    assert (200 in expected, 299 in expected, 301 in expected) == (True, True, True)
    assert (199 in expected, 300 in expected, 404 in expected) == (False, False, False)
    assert str(expected) == "2xx,301"


@pytest.mark.parametrize("text", ["", "2xy", "600", "99", "6xx", "200,,201", "2 00", "\u00b2xx"])
def test_bad_expected_status_is_refused(text: str) -> None:
    with pytest.raises(RequestError, match="bad expected status"):
        parse_expect_status(text)
