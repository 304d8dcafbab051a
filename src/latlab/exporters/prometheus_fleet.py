"""Per-worker series on the control API's ``/metrics``: what its fleet view shows now."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LABELS = ["worker", "location"]


@dataclass(frozen=True, slots=True)
class WorkerSample:
    id: str
    location: str
    capacity: int
    jobs: int
    heartbeat_age_s: float


class FleetCollector(Collector):
    def __init__(self, workers: Sequence[WorkerSample]) -> None:
        self._workers = list(workers)

    def collect(self) -> Iterable[Metric]:
        families = {
            "jobs": GaugeMetricFamily(
                "latlab_worker_jobs", "Jobs running on a live worker", labels=LABELS
            ),
            "capacity": GaugeMetricFamily(
                "latlab_worker_capacity",
                "Experiments and load runs a worker takes at once",
                labels=LABELS,
            ),
            "heartbeat_age_s": GaugeMetricFamily(
                "latlab_worker_heartbeat_age_seconds",
                "Time since a worker's last heartbeat",
                labels=LABELS,
            ),
        }
        for worker in self._workers:
            for field, family in families.items():
                family.add_metric([worker.id, worker.location], getattr(worker, field))
        yield from families.values()
