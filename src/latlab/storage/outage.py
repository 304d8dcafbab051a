"""Turn a driver's "cannot reach the backend" errors into :class:`StoreUnavailable`.

Each adapter says which driver errors mean an outage; this wraps its methods so that callers see
one error type for every backend and every other error (a real bug) passes through untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from latlab.storage.base import StoreError, StoreUnavailable

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
Method = Callable[Concatenate[S, P], Coroutine[Any, Any, R]]


def translating(
    is_outage: Callable[[BaseException], bool],
) -> Callable[[Method[S, P, R]], Method[S, P, R]]:
    """Decorate an adapter's async methods: an error ``is_outage`` accepts is re-raised as
    :class:`StoreUnavailable` (chained); :class:`StoreError` and every other error pass as is."""

    def decorate(method: Method[S, P, R]) -> Method[S, P, R]:
        @functools.wraps(method)
        async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await method(self, *args, **kwargs)
            except StoreError:
                raise
            except Exception as exc:
                if is_outage(exc):
                    raise StoreUnavailable(f"{method.__name__}: {exc}") from exc
                raise

        return wrapper

    return decorate
