"""Request-scoped access to what the lifespan opened (``request.state`` holds it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from latlab.api.idempotency import Idempotency
from latlab.api.state import AppState
from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.live import LiveHub
from latlab.jobs.manager import JobManager
from latlab.jobs.queries import BotQueries, ExperimentQueries
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store

MAX_ID = 2**63 - 1


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


StoreDep = Annotated[Store, Depends(_store)]
JobsDep = Annotated[JobManager, Depends(_jobs)]
ExperimentsDep = Annotated[ExperimentQueries, Depends(_experiments)]
BotRecordsDep = Annotated[BotQueries, Depends(_bot_records)]
BotsDep = Annotated[BotRunner, Depends(_bots)]
ProbesDep = Annotated[ProbeClient, Depends(_probes)]
SettingsDep = Annotated[Settings, Depends(_settings)]
IdempotencyDep = Annotated[Idempotency, Depends(_idempotency)]
LiveDep = Annotated[LiveHub, Depends(_live)]

ExperimentIdPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
ExperimentIdQuery = Annotated[
    int, Query(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
