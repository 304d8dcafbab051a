"""A load run's rate and connections, changed wherever it runs: here, or by asking its owner
(a worker, another API process) over Redis, which applies the change and answers. A sharded
run's change is divided among its shards as its start divided the run."""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from latlab.jobs.kinds.load import LoadRunner, RetuneRefused
from latlab.jobs.kinds.load_follow import summed_settings
from latlab.jobs.kinds.load_sharded import SHARD_KIND, ShardSpec, shard_ids, shard_of
from latlab.jobs.kinds.load_spec import LoadRunSpec
from latlab.jobs.supervise import until_stored
from latlab.measure.load.plan import shares
from latlab.storage import JobNotFound, JobRecord, JobState, Store
from latlab.storage.records import ProgressUpdate

if TYPE_CHECKING:
    from latlab.coordination.requests import Answerer, Body, OwnerRequests

# A change asked of a run whose pool is starting here waits for it this long: well within
# the asker's second (coordination.requests.ASK_TIMEOUT_S), with room for the change to be
# stored and the answer's way back (an answer too late is asked again: applied twice, alike).
ANSWER_WAIT_S = 0.5
ASKS = 3  # a second each: a run nobody runs is refused after three


async def retune_anywhere(
    runner: LoadRunner,
    requests: OwnerRequests | None,
    job: JobRecord,
    *,
    rate: float | None,
    connections: int | None,
) -> dict[str, Any]:
    """:meth:`LoadRunner.retune` where the run's pool is; :class:`RetuneRefused` as it does,
    or when no process runs it."""
    here = runner.runs_here(job.id)
    if here or requests is None or job.state is not JobState.RUNNING:
        return await runner.retune(job, rate=rate, connections=connections)
    answer = await _asked(requests, job, {"rate": rate, "connections": connections})
    if answer is None:
        raise RetuneRefused(f"{runner.noun} {job.id} is not running in any process")
    if "error" in answer:
        raise RetuneRefused(str(answer["error"]))
    values = answer.get("values")
    if not isinstance(values, dict):  # another version's answer: refused, not a 500
        raise RetuneRefused(f"{runner.noun} {job.id}: its process answered {answer!r:.200}")
    return values


async def _asked(requests: OwnerRequests, job: JobRecord, body: Body) -> Body | None:
    """The answer of the process that runs the job. Asked again while none comes: a run
    dispatched a moment ago may not be claimed yet (its pool's start is waited for)."""
    for _ in range(ASKS):
        answer = await requests.ask(job.kind, job.id, body)
        if answer is not None:
            return answer
    return None


class ChangeOutOfBounds(ValueError):
    """A change a sharded run cannot take: a shard's process would be left without a
    connection (HTTP 422 on ``field``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


async def retune_sharded(
    shard_runner: LoadRunner,
    requests: OwnerRequests | None,
    store: Store,
    job: JobRecord,
    *,
    rate: float | None,
    connections: int | None,
) -> dict[str, Any]:
    """A sharded run's change, divided among its running shards (one that has completed
    sends nothing more): each is changed where it runs. The run's own progress records the
    new totals at once."""
    spec = LoadRunSpec.model_validate(job.spec)
    if job.state is not JobState.RUNNING:
        message = f"load run {job.id} is {job.state}: only a running run can be changed"
        raise RetuneRefused(message)
    if rate is not None and spec.rate is None:
        raise RetuneRefused(f"load run {job.id} is a closed-model run: it has no rate")
    shards = [await store.get_job(SHARD_KIND, shard_id) for shard_id in shard_ids(job)]
    running = [shard for shard in shards if shard.state is JobState.RUNNING]
    if not running:
        raise RetuneRefused(f"load run {job.id} has no shard running now")
    # shares() gives the largest share first: to the shards with the most processes.
    processes = {shard.id: _processes(spec, shard) for shard in running}
    running.sort(key=lambda shard: processes[shard.id], reverse=True)
    count = len(running)
    split: list[int | None] = [None] * count
    if connections is not None:
        least = _least_connections([processes[shard.id] for shard in running])
        if connections < least:
            message = f"connections must be at least {least}: one for each worker process"
            raise ChangeOutOfBounds("connections", message + " of the running shards")
        split = [*shares(connections, count)]
    shard_rate = None if rate is None else rate / count
    try:
        changed = await asyncio.gather(
            *(
                retune_anywhere(shard_runner, requests, shard, rate=shard_rate, connections=share)
                for shard, share in zip(running, split, strict=True)
            )
        )
    except RetuneRefused as exc:
        raise RetuneRefused(f"load run {job.id}: {exc}") from exc
    values = summed_settings(changed)
    update = ProgressUpdate(job.kind, job.id, values)
    await until_stored(f"load run {job.id}", functools.partial(store.checkpoint, [], [update]))
    return values


def _processes(spec: LoadRunSpec, shard: JobRecord) -> int:
    """The most worker processes a shard runs: one per connection, one per request."""
    share = shard_of(spec, ShardSpec.model_validate(shard.spec).index)
    return share.processes(int(shard.progress.get("connections", share.connections)))


def _least_connections(processes: list[int]) -> int:
    """The fewest connections whose shares (largest first) give each shard, in the order of
    ``processes`` (most first), at least its processes."""
    least, count = sum(processes), len(processes)
    while any(p < need for p, need in zip(shares(least, count), processes, strict=True)):
        least += 1
    return least


def retune_answerer(runners: Mapping[str, LoadRunner], store: Store) -> Answerer:
    """Answers the rate and connection changes of the load runs (and shards) whose pool
    runs here; ``runners`` by kind."""

    async def answer(kind: str, job_id: int, body: Body) -> Body | None:
        runner = runners.get(kind)
        if runner is None or not await runner.until_live(job_id, ANSWER_WAIT_S):
            return None  # another process's, or nobody's: it answers, or nobody does
        rate, connections = body.get("rate"), body.get("connections")
        if not _change_valid(rate, connections):
            return {"error": f"not a change of rate or connections: {body!r:.200}"}
        try:
            job = await store.get_job(kind, job_id)
            values = await runner.retune(job, rate=rate, connections=connections)
        except (RetuneRefused, JobNotFound) as exc:
            return {"error": str(exc)}
        return {"values": values}

    return answer


def _change_valid(rate: object, connections: object) -> bool:
    """Checked again here: the asker is any process that can publish on Redis."""
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf
    ):
        return False
    if connections is not None and (
        isinstance(connections, bool) or not isinstance(connections, int) or connections < 1
    ):
        return False
    return rate is not None or connections is not None
