"""Request-scoped access to what the lifespan opened (``request.state`` holds it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request

from latlab.jobs.bots import BotFleet
from latlab.jobs.manager import JobManager
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store

MAX_ID = 2**63 - 1


def lifespan_state(name: str) -> Callable[[Request], Any]:
    """A dependency handing out what the lifespan put in ``request.state`` under ``name``."""

    def dependency(request: Request) -> Any:
        return getattr(request.state, name)

    return dependency


StoreDep = Annotated[Store, Depends(lifespan_state("store"))]
JobsDep = Annotated[JobManager, Depends(lifespan_state("jobs"))]
BotsDep = Annotated[BotFleet, Depends(lifespan_state("bots"))]
ProbesDep = Annotated[ProbeClient, Depends(lifespan_state("probes"))]
SettingsDep = Annotated[Settings, Depends(lifespan_state("settings"))]

ExperimentIdPath = Annotated[
    int, Path(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
ExperimentIdQuery = Annotated[
    int, Query(ge=1, le=MAX_ID, description="Integer id of the experiment.")
]
Offset = Annotated[int, Query(ge=0, le=2**31, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
