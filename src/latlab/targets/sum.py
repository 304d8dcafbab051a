"""Seed 003's sum server: ``Sum: <value>`` of the numbers in a query string or a JSON object.

Rules (docs/targets.md): a query value counts when it is a decimal number (``3``, ``-2.5``,
``1e3``); ``nan``, ``inf``, hex and ``1_000`` are not numbers and are skipped, like any other
text. Every occurrence of a repeated key counts. A JSON body must be an object; its values
that are JSON numbers count (booleans, strings, null, arrays and objects do not), and the
non-standard ``NaN``/``Infinity`` literals make the body invalid. A number or a sum beyond
the float range is a 400, never ``inf``. The sum is exactly rounded (``math.fsum``) and
printed as the original did: ``Sum: 0`` without numbers, the Python float otherwise.
"""

from __future__ import annotations

import json
import math
import re
from http import HTTPStatus
from urllib.parse import unquote_to_bytes

from latlab.serving.wire import Request, Response, text_response

CONTENT_TYPE_REQUIRED = 'Please, ensure the content type of your request is "application/json".'
NOT_AN_OBJECT = 'The JSON body must be an object, like {"a": 1, "b": 2}.'
OUT_OF_RANGE = "A number or the sum is out of range (beyond ±1.8e308)."

_NUMBER = re.compile(rb"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_OK_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
_OK_HEADS = tuple(_OK_HEAD + b"%d" % length for length in range(32))
_EXACT_INT = 2**53
_EXACT_DIGITS = 15  # any 15-digit integer is below 2**53
_NO_NUMBERS = text_response(HTTPStatus.OK, "Sum: 0")
_WRONG_TYPE = text_response(HTTPStatus.BAD_REQUEST, CONTENT_TYPE_REQUIRED)


class SumError(ValueError):
    """The request cannot be summed; the message tells the client why."""


def _sum_of_digits(query: bytes) -> Response | None:
    """The answer when every value is plain ASCII digits (the common case), else ``None``.

    Integers below 2**53 are exact as floats, so their integer sum is the float sum, and
    repr() prints such a float as "<integer>.0": the same answer as the general path,
    without parsing and printing floats.
    """
    total = 0
    for pair in query.split(b"&"):
        value = pair.partition(b"=")[2]
        if not value.isdigit() or len(value) > _EXACT_DIGITS:
            return None
        total += int(value)
    if total >= _EXACT_INT:
        return None
    body = b"Sum: %d.0" % total
    return Response(200, _OK_HEADS[len(body)], body)


def query_numbers(query: bytes) -> list[float]:
    """Each numeric value of a query string, decoded as an HTML form would be."""
    numbers = []
    for pair in query.split(b"&"):
        value = pair.partition(b"=")[2]  # "?5" names a key without a value: b""
        if value.isdigit():  # ASCII digits only: the common case, without the regex
            numbers.append(float(value))
            continue
        if b"%" in value or b"+" in value:
            value = unquote_to_bytes(value.replace(b"+", b" "))
        if _NUMBER.fullmatch(value):
            numbers.append(float(value))  # "1e400" becomes inf: refused in _answer
    return numbers


def _reject_constant(name: str) -> float:
    raise SumError(f"The body is not valid JSON: {name} is not a JSON number.")


def json_numbers(body: bytes) -> list[float]:
    """The number values of a JSON object (RFC 8259: UTF-8, -16 or -32)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except SumError:
        raise
    except (ValueError, RecursionError) as exc:
        raise SumError(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise SumError(NOT_AN_OBJECT)
    try:
        return [
            float(v)
            for v in data.values()
            if isinstance(v, int | float) and not isinstance(v, bool)  # true is not 1 here
        ]
    except OverflowError:  # an integer too large for a float
        raise SumError(OUT_OF_RANGE) from None


def is_json(content_type: bytes | None) -> bool:
    """``application/json`` with any parameters (``; charset=utf-8``), in any case."""
    if content_type is None:
        return False
    return content_type.partition(b";")[0].strip().lower() == b"application/json"


def _answer(numbers: list[float]) -> Response:
    if not numbers:
        return _NO_NUMBERS
    try:
        # 0.0 + turns -0.0 into 0.0, as the original's running total did.
        total = 0.0 + math.fsum(numbers)
    except (OverflowError, ValueError):  # the sum overflows, or inf + -inf
        raise SumError(OUT_OF_RANGE) from None
    if total - total != 0.0:  # inf or nan: a number beyond the range (isinf, but cheaper)
        raise SumError(OUT_OF_RANGE)
    body = b"Sum: %r" % total
    return Response(200, _OK_HEADS[len(body)], body)  # repr(float) is at most 24 bytes


def sum_numbers(request: Request) -> Response:
    """GET/HEAD: sum the query values. POST: sum the values of a JSON object."""
    try:
        if request.method != b"POST":
            return _sum_of_digits(request.query) or _answer(query_numbers(request.query))
        if not is_json(request.content_type):
            return _WRONG_TYPE
        return _answer(json_numbers(request.body))
    except SumError as exc:
        return text_response(HTTPStatus.BAD_REQUEST, str(exc))
