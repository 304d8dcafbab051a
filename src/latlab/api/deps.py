"""Request-scoped access to what the lifespan opened (``request.state`` holds it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from latlab.api.errors import unknown_keys_error
from latlab.api.idempotency import Idempotency
from latlab.api.quotas import client_key, running_limit
from latlab.api.state import AppState
from latlab.jobs.kinds.bot import KIND as BOT
from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.kinds.probe import KIND as PROBE
from latlab.jobs.kinds.probe_spec import ProbeLimits
from latlab.jobs.kinds.spec_checks import LOCATION_MAX, LOCATION_NEEDS_WORKERS, SHARDS_NEED_WORKERS
from latlab.jobs.live import LiveHub
from latlab.jobs.manager import JobManager
from latlab.jobs.queries import BadQuery, BotQueries, ExperimentQueries
from latlab.jobs.quota import RunningLimit
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store

MAX_ID = 2**63 - 1
ITEMS_SLICE = 500  # list items handled between two turns of the event loop (~10 ms at most)


def app_state(request: Request) -> AppState:
    state: AppState = request.state.latlab
    return state


def _store(request: Request) -> Store:
    return app_state(request).store


def _jobs(request: Request) -> JobManager:
    return app_state(request).jobs


def _bots(request: Request) -> BotRunner:
    return app_state(request).bots


def _probes(request: Request) -> ProbeClient:
    return app_state(request).probes


def _probe_limits(request: Request) -> ProbeLimits:
    return app_state(request).probe_limits


def _experiments(request: Request) -> ExperimentQueries:
    return ExperimentQueries(app_state(request).store)


def _bot_records(request: Request) -> BotQueries:
    return BotQueries(app_state(request).store)


def _settings(request: Request) -> Settings:
    return app_state(request).settings


def _idempotency(request: Request) -> Idempotency:
    return app_state(request).idempotency


def _live(request: Request) -> LiveHub:
    return app_state(request).live


def _live_locations(request: Request) -> set[str] | None:
    """Where workers are up, as of the fleet view (refreshed every second); None without Redis."""
    fleet = app_state(request).fleet
    return None if fleet is None else {worker.location for worker in fleet.workers}


def _experiments_limit(request: Request) -> RunningLimit:
    return running_limit(app_state(request).settings, PROBE)


def _bots_limit(request: Request) -> RunningLimit:
    return running_limit(app_state(request).settings, BOT)


def location_has_workers(location: str | None, settings: Settings) -> None:
    """A 422 for a location asked of a LatLab without Redis: no worker could ever take it."""
    if location is not None and settings.redis_url is None:
        msg = LOCATION_NEEDS_WORKERS
        error = {"type": "value_error", "loc": ["body", "location"], "msg": msg, "input": location}
        raise RequestValidationError([error])


def shards_have_workers(shards: int, locations: list[str] | None, settings: Settings) -> None:
    """A 422 for a load run split over workers on a LatLab without Redis."""
    if settings.redis_url is not None or (shards == 1 and not locations):
        return
    field, value = ("locations", locations) if locations else ("shards", shards)
    msg = SHARDS_NEED_WORKERS
    error = {"type": "value_error", "loc": ["body", field], "msg": msg, "input": value}
    raise RequestValidationError([error])


def count_create(request: Request) -> None:
    """Count a create request against its client's rate (429 past it). Route dependency."""
    state = app_state(request)
    key = client_key(request, state.settings)
    state.create_rate.admit(key, state.settings.create_rate_per_min)


def batch_length_error(count: int, max_items: int) -> RequestValidationError:
    """The 422 of a list of experiments that is empty or longer than ``max_items``."""
    error = {
        "type": "too_long" if count else "too_short",
        "loc": ["body"],
        "msg": f"give between 1 and {max_items} experiments",
        "input": count,
    }
    return RequestValidationError([error])


def known_keys_only(
    model: type[BaseModel], max_items: int | None = None
) -> Callable[[Request], Awaitable[None]]:
    """A route dependency that rejects a JSON body (an object, or a list of objects) with
    keys ``model`` does not know, in one short 422, before the model validates it.

    A list must hold 1 to ``max_items`` items (when given): checked before any item is, so a
    list of millions costs its length, and a long one is walked a slice at a time.
    """
    fields = model.model_fields
    known = frozenset(fields) | {field.alias for field in fields.values() if field.alias}

    async def check(request: Request) -> None:
        try:
            body: Any = await request.json()  # parsed once: FastAPI reuses it
        except ValueError:  # no JSON body: the route's own validation answers
            return
        if not isinstance(body, list):
            _check_item(body, known, ["body"])
            return
        if max_items is not None and not 1 <= len(body) <= max_items:
            raise batch_length_error(len(body), max_items)
        for first in range(0, len(body), ITEMS_SLICE):
            if first:
                await asyncio.sleep(0)  # other requests run between slices
            for index in range(first, min(first + ITEMS_SLICE, len(body))):
                _check_item(body[index], known, ["body", index])

    return check


def _check_item(item: Any, known: frozenset[str], loc: list[int | str]) -> None:
    if isinstance(item, dict):
        error = unknown_keys_error(item, known, loc)
        if error is not None:
            raise error


StoreDep = Annotated[Store, Depends(_store)]
JobsDep = Annotated[JobManager, Depends(_jobs)]
ExperimentsDep = Annotated[ExperimentQueries, Depends(_experiments)]
BotRecordsDep = Annotated[BotQueries, Depends(_bot_records)]
BotsDep = Annotated[BotRunner, Depends(_bots)]
ProbesDep = Annotated[ProbeClient, Depends(_probes)]
ProbeLimitsDep = Annotated[ProbeLimits, Depends(_probe_limits)]
SettingsDep = Annotated[Settings, Depends(_settings)]
IdempotencyDep = Annotated[Idempotency, Depends(_idempotency)]
LiveDep = Annotated[LiveHub, Depends(_live)]
LiveLocationsDep = Annotated[set[str] | None, Depends(_live_locations)]
ExperimentsLimitDep = Annotated[RunningLimit, Depends(_experiments_limit)]
BotsLimitDep = Annotated[RunningLimit, Depends(_bots_limit)]

ExperimentIdPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
LoadRunIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Integer id of the load run.")]
ExperimentIdQuery = Annotated[
    int, Query(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]


LocationQuery = Annotated[
    str | None,
    Query(
        max_length=LOCATION_MAX,
        description="Only the probes at this location, of an experiment with `locations`.",
    ),
]


@contextlib.contextmanager
def query_errors() -> Iterator[None]:
    """A query the experiment cannot answer (a window, a location) as a 422 on its field."""
    try:
        yield
    except BadQuery as exc:
        loc = ["query", exc.field]
        error = {"type": "value_error", "loc": loc, "msg": str(exc), "input": None}
        raise RequestValidationError([error]) from exc
