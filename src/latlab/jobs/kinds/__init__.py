"""The job kinds LatLab ships. A new kind is a module here plus a line in ``builtin_runners``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_shard import LoadShardRunner
from latlab.jobs.kinds.load_sharded import ShardedRuns
from latlab.jobs.kinds.probe_sites import ExperimentRunner, SiteRunner
from latlab.jobs.runner import JobRunner

if TYPE_CHECKING:
    from latlab.jobs.manager import JobManager


def builtin_runners(
    *,
    bot_tick_s: float = 1.0,
    bot_log_ticks: bool = True,
    stats_flush_results: int = 200,
    load_ca_file: str | None = None,
) -> list[JobRunner]:
    return [
        ExperimentRunner(stats_flush_results),
        SiteRunner(stats_flush_results),
        BotRunner(bot_tick_s, log_ticks=bot_log_ticks),
        LoadRunner(load_ca_file, ShardedRuns()),
        LoadShardRunner(load_ca_file),
    ]


def bind_manager(runners: Sequence[JobRunner], jobs: JobManager) -> None:
    """Give the kinds that run jobs of their own (a sharded load run's shards, an experiment's
    series at each location) the manager."""
    for runner in runners:
        if isinstance(runner, LoadRunner) and runner.sharded is not None:
            runner.sharded.bind(jobs)
        if isinstance(runner, ExperimentRunner):
            runner.sites.bind(jobs)
