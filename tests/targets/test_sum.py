"""Seed 003's sum server: the README's examples and every input case of docs/targets.md."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from running import serving, settings_for

from latlab.targets.sum import CONTENT_TYPE_REQUIRED, NOT_AN_OBJECT, OUT_OF_RANGE
from serving.http_client import connect, exchange, get, read_answer, request


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The targets, in the test's loop, on a free port."""
    async with serving(settings_for()) as bound:
        yield bound


JSON = {"Content-Type": "application/json"}


async def test_readme_get_example(port: int) -> None:
    # curl -G -d "a=3" -d "b=3" http://localhost:8008
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}", params={"a": "3", "b": "3"})
    assert (response.status_code, response.text) == (200, "Sum: 6.0")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)


async def test_readme_post_example(port: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{port}/sum", json={"a": 1, "b": 2})
    assert (response.status_code, response.text) == (200, "Sum: 3.0")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", "Sum: 0"),
        ("a=x&b=", "Sum: 0"),
        ("5", "Sum: 0"),  # a key without a value
        ("a=1&a=2", "Sum: 3.0"),  # every occurrence of a repeated key counts
        ("a=-2.5&b=1e3&c=.5&d=7.", "Sum: 1005.0"),
        ("a=nan&b=inf&c=-Infinity&d=1_000&e=0x10&f=1&g=true", "Sum: 1.0"),  # not numbers
        ("a=%2B3&b=+4", "Sum: 7.0"),  # percent-encoding; "+" is a space, as in forms
        ("a=0.1&b=0.2", "Sum: 0.30000000000000004"),
        ("a=0.1&b=0.2&c=-0.3", "Sum: 2.7755575615628914e-17"),  # exactly rounded (fsum)
        ("a=-0", "Sum: 0.0"),
        ("a=12345678901234567890", "Sum: 1.2345678901234567e+19"),
        ("&".join(["a=999999999999999"] * 10), "Sum: 9999999999999990.0"),  # past 2**53
    ],
)
async def test_get_sums_the_numeric_query_values(port: int, query: str, expected: str) -> None:
    answer = await exchange(port, get(f"/?{query}"))
    assert (answer.status, answer.body.decode()) == (200, expected)


@pytest.mark.parametrize("path", ["/", "/sum", "/anything/deeper", "/status"])
async def test_every_path_without_a_route_sums(port: int, path: str) -> None:
    assert (await exchange(port, get(f"{path}?a=2&b=2"))).body == b"Sum: 4.0"


@pytest.mark.parametrize(
    "query", ["a=1e400", "a=1e308&b=1e308", "a=-1e308&b=-1e308", "a=" + "9" * 400]
)
async def test_out_of_range_numbers_or_sums_are_400(port: int, query: str) -> None:
    answer = await exchange(port, get(f"/?{query}"))
    assert (answer.status, answer.body.decode()) == (400, OUT_OF_RANGE)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1, "b": 2}', "Sum: 3.0"),
        (b"{}", "Sum: 0"),
        (b'{"a": true, "b": "3", "c": null, "d": [1], "e": {"f": 1}, "g": 2}', "Sum: 2.0"),
        (b'{"a": 1.5, "b": -0.5}', "Sum: 1.0"),
        (b'{"a": 9007199254740993}', "Sum: 9007199254740992.0"),  # floats, as the original
        (json.dumps({"a": 1, "b": 2}).encode("utf-16"), "Sum: 3.0"),  # RFC 8259 encodings
    ],
)
async def test_post_sums_the_number_values_of_a_json_object(
    port: int, body: bytes, expected: str
) -> None:
    answer = await exchange(port, request("POST", "/", JSON, body))
    assert (answer.status, answer.body.decode()) == (200, expected)


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", " application/json ;x=y"],
)
async def test_json_content_type_may_carry_parameters(port: int, content_type: str) -> None:
    answer = await exchange(port, request("POST", "/", {"Content-Type": content_type}, b'{"a":1}'))
    assert answer.body == b"Sum: 1.0"


@pytest.mark.parametrize(
    "headers", [{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/jsonx"}]
)
async def test_other_or_missing_content_type_is_the_seeds_400(
    port: int, headers: dict[str, str]
) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("POST", "/sum", headers, b'{"a": 1}') + get("/?a=1"))
        answer = await read_answer(reader)
        assert (answer.status, answer.body.decode()) == (400, CONTENT_TYPE_REQUIRED)
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
        assert (await read_answer(reader)).body == b"Sum: 1.0"  # the connection lives on


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", NOT_AN_OBJECT),
        (b"3", NOT_AN_OBJECT),
        (b"", "The body is not valid JSON: Expecting value"),
        (b'{"a": 1', "The body is not valid JSON: Expecting ',' delimiter"),
        (b'{"a": NaN}', "The body is not valid JSON: NaN is not a JSON number."),
        (b'{"a": -Infinity}', "The body is not valid JSON: -Infinity is not a JSON number."),
        (b'{"a": "\xff"}', "The body is not valid JSON: 'utf-8' codec can't decode"),
        (b'{"a": 1e400}', OUT_OF_RANGE),
        (b'{"a": 1' + b"0" * 400 + b"}", OUT_OF_RANGE),
        (b'{"a": 1e308, "b": 1e308}', OUT_OF_RANGE),
    ],
)
async def test_bad_json_bodies_are_400_with_a_clear_message(
    port: int, body: bytes, message: str
) -> None:

    answer = await exchange(port, request("POST", "/", JSON, body))
    assert answer.status == 400
    assert answer.body.decode().startswith(message)


async def test_head_answers_like_get_without_the_body(port: int) -> None:
    async with connect(port) as (reader, writer):
        writer.write(request("HEAD", "/?a=1") + get("/?a=2"))
        head = await read_answer(reader, head_only=True)
        assert (head.status, head.headers["content-length"]) == (200, "8")
        assert (await read_answer(reader)).body == b"Sum: 2.0"


async def test_other_methods_are_405(port: int) -> None:
    answer = await exchange(port, request("PUT", "/sum", JSON, b"{}"))
    assert (answer.status, answer.headers["allow"]) == (405, "GET, HEAD, POST")
