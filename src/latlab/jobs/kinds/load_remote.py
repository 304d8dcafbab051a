"""A load run's rate and connections, changed wherever it runs: here, or by asking its owner
(a worker, another API process) over Redis, which applies the change and answers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from latlab.jobs.kinds.load import KIND, LoadRunner, RetuneRefused
from latlab.storage import JobNotFound, JobRecord, JobState, Store

if TYPE_CHECKING:
    from latlab.coordination.requests import Answerer, Body, OwnerRequests


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
    here = runner.workers_running(job.id) is not None
    if here or requests is None or job.state is not JobState.RUNNING:
        return await runner.retune(job, rate=rate, connections=connections)
    answer = await requests.ask(KIND, job.id, {"rate": rate, "connections": connections})
    if answer is None:
        raise RetuneRefused(f"load run {job.id} is not running in any process")
    if "error" in answer:
        raise RetuneRefused(str(answer["error"]))
    values = answer.get("values")
    if not isinstance(values, dict):  # another version's answer: refused, not a 500
        raise RetuneRefused(f"load run {job.id}: its process answered {answer!r:.200}")
    return values


def retune_answerer(runner: LoadRunner, store: Store) -> Answerer:
    """Answers the rate and connection changes of the load runs whose pool runs here."""

    async def answer(kind: str, job_id: int, body: Body) -> Body | None:
        if kind != KIND or runner.workers_running(job_id) is None:
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
