"""REST API for pipeline runs: ``/api/v1/pipeline-runs``, read from the SQL store the
pipeline records its client calls in. A store without them (memory, MongoDB) has none."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from sse_starlette import ServerSentEvent

from latlab.api.deps import Limit, Offset, SettingsDep, app_state
from latlab.api.errors import Problem
from latlab.api.pipeline_run_schemas import PipelineRunPublic, PipelineRunsPublic
from latlab.api.v1.events import feed_response
from latlab.storage.records import Page

if TYPE_CHECKING:
    from latlab.storage.sql.pipeline_runs import PipelineRun

router = APIRouter(prefix="/api/v1/pipeline-runs", tags=["pipeline runs"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No pipeline run with this id."}
}
RunIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=r"^[\x21-\x7e]+$",
        description="The run's id, as the client's answer gives it (1-64 printable ASCII).",
    ),
]


class RunsReader(Protocol):
    async def get(self, run_id: str) -> PipelineRun | None: ...

    async def page(self, offset: int, limit: int) -> Page[PipelineRun]: ...


class _NoRuns:
    """The runs of a store that keeps none."""

    async def get(self, run_id: str) -> PipelineRun | None:
        return None

    async def page(self, offset: int, limit: int) -> Page[PipelineRun]:
        return Page([], 0)


def _runs(request: Request) -> RunsReader:
    runs: RunsReader | None = getattr(app_state(request).store, "pipeline_runs", None)
    return _NoRuns() if runs is None else runs


RunsDep = Annotated[RunsReader, Depends(_runs)]


@router.get("", response_model=PipelineRunsPublic)
async def list_pipeline_runs(
    runs: RunsDep, offset: Offset = 0, limit: Limit = 100
) -> PipelineRunsPublic:
    """Runs newest first; always empty on a memory or MongoDB store."""
    page = await runs.page(offset, limit)
    data = [PipelineRunPublic.of(run) for run in page.items]
    return PipelineRunsPublic(data=data, count=page.total, offset=offset, limit=limit)


@router.get("/{run_id}", response_model=PipelineRunPublic, responses=_NOT_FOUND)
async def get(run_id: RunIdPath, runs: RunsDep) -> PipelineRunPublic:
    """One run, with its counts and latency percentiles so far."""
    return PipelineRunPublic.of(await _found(runs, run_id))


async def _found(runs: RunsReader, run_id: str) -> PipelineRun:
    run = await runs.get(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"pipeline run {run_id} not found")
    return run


POLL_S = 0.5  # the pipeline's writer stores its counts at most this often
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"description": "A stream of Server-Sent Events.", "content": {"text/event-stream": {}}}
}


@router.get("/{run_id}/events", response_model=None, responses={**_STREAM, **_NOT_FOUND})
async def pipeline_run_events(run_id: RunIdPath, runs: RunsDep, settings: SettingsDep) -> Response:
    """The run as it goes: a `run` event (the run, as `GET /{run_id}` gives it) each time
    it changes; the stream ends once the call is over and every acknowledged request is
    written, or with a `deleted` event."""
    first = await _found(runs, run_id)
    return feed_response(settings, _run_frames(runs, first))


async def _run_frames(runs: RunsReader, first: PipelineRun) -> AsyncIterator[bytes]:
    yield ServerSentEvent(comment="subscribed").encode()
    run: PipelineRun | None = first
    sent = None
    while run is not None:
        public = PipelineRunPublic.of(run)
        data = public.model_dump_json()
        if data != sent:
            yield ServerSentEvent(data, event="run").encode()
            sent = data
        if public.finished_at is not None and public.written >= public.acked:
            return  # nothing more will change
        await asyncio.sleep(POLL_S)
        run = await runs.get(first.run_id)
    yield ServerSentEvent(json.dumps({"run_id": first.run_id}), event="deleted").encode()
