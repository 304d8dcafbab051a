"""Ordinary start-up mistakes as one line on stderr and an exit code, not a traceback.

Exit 2: the configuration is wrong (a bad ``LATLAB_*`` value, storage URL or bind address, a
port in use, a missing extra). Exit 3: a dependency (the store, Redis) still could not be
reached after ``LATLAB_STARTUP_TIMEOUT_S``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

    from latlab.cli.logs import StartupLog

BAD_CONFIGURATION = 2
UNREACHABLE = 3
_WAIT_LONGER = "or give it longer with LATLAB_STARTUP_TIMEOUT_S"


class StartupError(Exception):
    """A start-up mistake: ``str(error)`` is the one line to print, ``exit_code`` the status."""

    def __init__(self, message: str, exit_code: int = BAD_CONFIGURATION) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_REDIS_REFUSED = "Redis refused the user or password in LATLAB_REDIS_URL: fix them"


def explain(exc: BaseException) -> StartupError | None:
    """The one line for an ordinary mistake; ``None`` for anything else (a bug)."""
    invalid = _settings_error(exc)
    if invalid is not None:
        return StartupError(_invalid_settings(invalid))
    for kind, describe in _explanations():
        if isinstance(exc, kind):
            return describe(exc)
    return None


def _settings_error(exc: BaseException) -> ValidationError | None:
    # Only the settings' own validation is a configuration mistake; a model failing to
    # validate elsewhere during start-up is a bug.
    from pydantic import ValidationError

    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return exc
    return None


Explanation = tuple[type[BaseException], Callable[[Any], StartupError]]


def _explanations() -> list[Explanation]:
    # Imported here: only a failed start pays for them.
    from redis.exceptions import AuthenticationError

    from latlab.coordination import CoordinatorUnavailable, UnsupportedRedisURL
    from latlab.storage.base import StoreUnavailable
    from latlab.storage.registry import UnsupportedStorageURL

    store_hint = f"start it or fix LATLAB_STORAGE_URL, {_WAIT_LONGER}"
    redis_hint = f"start it or fix LATLAB_REDIS_URL, {_WAIT_LONGER}"
    return [
        (StartupError, lambda exc: exc),
        (UnsupportedStorageURL, lambda exc: StartupError(f"LATLAB_STORAGE_URL: {exc}")),
        (UnsupportedRedisURL, lambda exc: StartupError(f"LATLAB_REDIS_URL: {exc}")),
        (
            StoreUnavailable,
            lambda exc: StartupError(f"store unavailable: {exc}: {store_hint}", UNREACHABLE),
        ),
        (CoordinatorUnavailable, lambda exc: StartupError(f"{exc}: {redis_hint}", UNREACHABLE)),
        (AuthenticationError, lambda exc: StartupError(f"{_REDIS_REFUSED} ({exc})")),
    ]


def _secret_settings() -> frozenset[str]:
    from latlab.settings import Settings

    return frozenset(
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    )


def _invalid_settings(exc: ValidationError) -> str:
    """``LATLAB_PORT='abc': Input should be a valid integer…`` for each bad value, on one line."""
    secrets = _secret_settings()
    problems = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        shown = "" if name in secrets else f"={_brief(repr(_without_credentials(error['input'])))}"
        # A validator's own ValueError reads better without pydantic's "Value error, ".
        cause = error.get("ctx", {}).get("error") if error["type"] == "value_error" else None
        problems.append(f"LATLAB_{name.upper()}{shown}: {cause or error['msg']}")
    return "; ".join(problems) + " (fix the variable or its command-line option)"


def _without_credentials(value: object) -> object:
    """A URL's user name and password (``redis://:pw@host``) are not shown: ``***@host``."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    _, at, location = rest.rpartition("@")
    return f"{scheme}://***@{location}" if at else value


def _brief(text: str, limit: int = 80) -> str:
    """``text``, or its start and end around "…": a long path keeps its file name."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


@contextlib.contextmanager
def reporting_startup(verbose: bool, log: StartupLog | None = None) -> Iterator[None]:
    """Turn an ordinary mistake raised inside into one line and ``SystemExit(code)``.

    Once ``log`` says the server is up, errors pass through untouched. ``verbose`` also
    prints the traceback and the log lines held back during start-up.
    """
    try:
        yield
    except Exception as exc:
        if log is not None and log.serving:
            raise
        failure = explain(exc)
        if log is not None:
            log.end_startup(keep=verbose or failure is None)
        if failure is None:
            raise
        if verbose:
            traceback.print_exception(exc)
        sys.stderr.write(f"latlab: {failure}\n")
        sys.stderr.flush()
        raise SystemExit(failure.exit_code) from None
