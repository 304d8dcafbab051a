"""Request-scoped access to what the lifespan opened (``request.state`` holds it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from latlab.jobs.bots import BotFleet
from latlab.jobs.manager import JobManager
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store

MAX_ID = 2**63 - 1


def get_store(request: Request) -> Store:
    store: Store = request.state.store
    return store


def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.state.jobs
    return jobs


def get_bots(request: Request) -> BotFleet:
    bots: BotFleet = request.state.bots
    return bots


def get_probes(request: Request) -> ProbeClient:
    probes: ProbeClient = request.state.probes
    return probes


def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
BotsDep = Annotated[BotFleet, Depends(get_bots)]
ProbesDep = Annotated[ProbeClient, Depends(get_probes)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

ExperimentIdPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
ExperimentIdQuery = Annotated[
    int, Query(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
