"""What the lifespan opened, as one typed object (``request.state.latlab``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from latlab.api.idempotency import Idempotency
from latlab.api.quotas import CreateRate
from latlab.exporters.prometheus import ControlMetricsPage
from latlab.jobs.fleet import FleetWatch
from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.kinds.probe_spec import ProbeLimits
from latlab.jobs.live import LiveHub
from latlab.jobs.manager import JobManager
from latlab.measure.client import ProbeClient
from latlab.settings import Settings
from latlab.storage import Store

if TYPE_CHECKING:
    from latlab.coordination.requests import OwnerRequests


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    store: Store
    jobs: JobManager
    bots: BotRunner
    probes: ProbeClient
    probe_limits: ProbeLimits  # what new experiments may ask for
    idempotency: Idempotency
    live: LiveHub
    metrics: ControlMetricsPage
    fleet: FleetWatch | None = None  # the workers, when Redis is configured
    owner_requests: OwnerRequests | None = None  # questions to a job's process, with Redis
    create_rate: CreateRate = field(default_factory=CreateRate)  # per process, in memory
