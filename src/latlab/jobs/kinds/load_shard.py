"""A shard of a sharded load run: its share of the run, run like a load run of its own.

Its spec names the run and its index; what it sends is derived from the run's spec, which
is validated again here (the worker that runs it trusts nothing it reads from Redis or the
store). Its seconds are stored under its own job and reach the feeds, InfluxDB and
``/metrics`` merged, through its run (:mod:`latlab.jobs.kinds.load_follow`). Like a load
run, a shard whose worker stopped gracefully (SIGTERM) is handed on and goes on from its
checkpoint on another worker; one whose worker died fails ``interrupted``, and so does its run.
"""

from __future__ import annotations

from latlab.jobs.driver import JobFailed
from latlab.jobs.kinds.load import LoadRunner
from latlab.jobs.kinds.load_follow import SHARDS
from latlab.jobs.kinds.load_sharded import SHARD_KIND, ShardSpec, shard_of
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.kinds.load_stats import KIND
from latlab.jobs.runner import RunContext
from latlab.storage import JobRecord


class LoadShardRunner(LoadRunner):
    kind = SHARD_KIND
    noun = "shard"

    async def spec_of(self, job: JobRecord, ctx: RunContext) -> LoadRunSpec:
        shard = ShardSpec.model_validate(job.spec)
        run = await SHARDS.parent_of(job, ctx, KIND, "load run")
        await SHARDS.belongs(job, run)
        spec = LoadRunSpec.model_validate(run.spec)
        if shard.index >= spec.shard_count:
            raise JobFailed(f"load run {shard.run} has no shard {shard.index + 1}")
        return shard_of(spec, shard.index)
