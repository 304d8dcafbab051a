"""Checks the specs of experiments and load runs share, as pydantic validation errors.

A request part is checked by the request builder itself (``RequestSpec``), so a spec refuses
exactly what could not be sent, in the error of the field it came from.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictStr, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from latlab.measure.request import RequestError, RequestSpec

LOCATION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # also a Redis key part: no ':' or spaces
LOCATION_MAX = 64
LOCATION_NEEDS_WORKERS = "a location needs workers: set LATLAB_REDIS_URL and run latlab worker"
SHARDS_NEED_WORKERS = "shards need workers: set LATLAB_REDIS_URL and run latlab worker"
LOCATIONS_NEED_WORKERS = "locations need workers: set LATLAB_REDIS_URL and run latlab worker"

# One entry of a ``locations`` list.
Location = Annotated[StrictStr, Field(max_length=LOCATION_MAX, pattern=LOCATION_PATTERN)]


def location_field(what: str) -> Any:
    """The ``location`` of a job that runs only on workers started with ``--location``."""
    return Field(
        None,
        max_length=LOCATION_MAX,
        pattern=LOCATION_PATTERN,
        description=f"Run {what} only on workers at this location (`latlab worker --location`); "
        "null: any worker, or the API process when no worker is up.",
    )


def field_error(
    model: str, field: str | None, kind: str, message: str, value: object
) -> ValidationError:
    """A validation error on one field (or, without one, the whole body), raised after the
    fields when the check needs several of them."""
    error = PydanticCustomError(kind, "{message}", {"message": message})
    loc: tuple[str, ...] = () if field is None else (field,)
    return ValidationError.from_exception_data(
        model, [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def request_part(**part: Any) -> None:
    """Check a method or headers as the request builder will, in the field's own error."""
    try:
        RequestSpec(**part)
    except RequestError as exc:
        raise ValueError(str(exc)) from None


def _method(value: str) -> str:
    request_part(method=value)
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    request_part(headers=tuple(value.items()))
    return value


# The request parts experiments and load runs both take, checked by the request builder.
Method = Annotated[
    str,
    Field(max_length=32, description="HTTP method, upper case."),
    AfterValidator(_method),
]
Headers = Annotated[
    dict[str, str],
    Field(max_length=64, description="Request headers, name to value."),
    AfterValidator(_headers),
]
