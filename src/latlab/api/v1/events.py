"""Live feeds as Server-Sent Events: one experiment's, and every job's.

The feeds (jobs/feeds.py) decide what is sent and when a stream ends; this module only turns
their events into SSE frames. Heartbeats are sse-starlette's ``ping`` comments. A send that
cannot complete within one heartbeat interval means the client stopped reading (its TCP
window and our buffers are full): the response gives up and the connection is closed.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from latlab.api.deps import (
    MAX_ID,
    ExperimentIdPath,
    ExperimentsDep,
    LiveDep,
    LoadRunIdPath,
    LocationQuery,
    SettingsDep,
    StoreDep,
    query_errors,
)
from latlab.api.load_run_schemas import LoadSecondPublic
from latlab.api.schemas import ResultPublic
from latlab.exporters.base import LoadSecond, StateChange
from latlab.jobs.feeds import FEED_LINGER_S, FeedEvent, Ready, jobs_feed
from latlab.jobs.kinds.load_feed import load_run_feed, nothing_after_second
from latlab.jobs.live import LOAD, Deleted, Overflow
from latlab.settings import Settings
from latlab.storage import JobState, ProbeResult

log = logging.getLogger("latlab.api")
router = APIRouter(tags=["events"])
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"description": "A stream of Server-Sent Events.", "content": {"text/event-stream": {}}}
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No experiment with this id."}}
_OVERFLOW = json.dumps(
    {"detail": "the client fell too far behind; reconnect (with Last-Event-ID) to go on"}
)

LastEventId = Annotated[
    int | None,
    Header(ge=-1, le=MAX_ID, description="Resume after this result seq (wins over `after`)."),
]
AfterQuery = Annotated[
    int | None,
    Query(ge=-1, le=MAX_ID, description="Replay stored results with a higher seq (-1: all)."),
]
IncludeQuery = Annotated[
    Literal["results"] | None,
    Query(description="`results`: every experiment's results too, not only state changes."),
]


class StateEvent(BaseModel):
    """The data of a ``state`` event."""

    id: int
    kind: str
    state: JobState
    error: str | None
    at: datetime = Field(description="When the job moved (UTC).")


class LoadSecondEvent(LoadSecondPublic):
    """The data of a load run's ``second`` event (its id is the second): its row of
    ``/seconds``, with the run and when the second began."""

    run_id: int
    at: datetime = Field(description="When the second began (UTC).")

    @classmethod
    def of(cls, second: LoadSecond) -> LoadSecondEvent:
        return cls(**dataclasses.asdict(second))


class FeedResult(ResultPublic):
    """A ``result`` event of ``/api/v1/events``: the v1 result with its experiment's id."""

    experiment_id: int


class _FeedResponse(EventSourceResponse):
    """An EventSourceResponse that treats a send timeout as the client's doing, not a bug."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning("closed a live feed whose client stopped reading (%s)", scope["path"])


def feed_response(settings: Settings, chunks: AsyncIterator[bytes]) -> _FeedResponse:
    """A live feed of ``chunks``, with heartbeats and a send timeout from the settings."""
    interval = settings.events_heartbeat_s
    return _FeedResponse(chunks, ping=interval, send_timeout=interval)


# Encoded once per result, whoever asks: every client of a feed gets the same text.
@functools.lru_cache(maxsize=4096)
def _experiment_result(result: ProbeResult) -> bytes:
    data = ResultPublic.of(result).model_dump_json()
    return ServerSentEvent(data, event="result", id=str(result.seq)).encode()


@functools.lru_cache(maxsize=4096)
def _located_result(result: ProbeResult) -> bytes:
    data = ResultPublic.of(result).model_dump_json()
    return ServerSentEvent(data, event="result").encode()


@functools.lru_cache(maxsize=4096)
def _any_result(result: ProbeResult) -> bytes:
    # No id line: seqs are per experiment, and this feed has no replay a Last-Event-ID could
    # resume, so an id would only mislead a reconnecting client.
    public = ResultPublic.of(result).model_dump()
    data = FeedResult(**public, experiment_id=result.job_id).model_dump_json()
    return ServerSentEvent(data, event="result").encode()


def _state(change: StateChange, end_id: str | None = None) -> ServerSentEvent:
    data = StateEvent(
        id=change.job_id, kind=change.kind, state=change.state, error=change.error, at=change.at
    )
    event_id = end_id if change.state.ended else None
    return ServerSentEvent(data.model_dump_json(), event="state", id=event_id)


@functools.lru_cache(maxsize=1024)
def _load_second(second: LoadSecond) -> bytes:
    data = LoadSecondEvent.of(second).model_dump_json()
    return ServerSentEvent(data, event="second", id=str(second.second)).encode()


def _frame(
    event: LoadSecond | StateChange | Deleted | Ready | Overflow, end_id: str | None = None
) -> bytes:
    """Every event but a result: those differ between the two feeds. ``end_id``: the id
    of the final state event, in a feed whose results have none."""
    if isinstance(event, LoadSecond):
        return _load_second(event)
    if isinstance(event, StateChange):
        return _state(event, end_id).encode()
    if isinstance(event, Deleted):
        data = json.dumps({"id": event.job_id, "kind": event.kind})
        return ServerSentEvent(data, event="deleted").encode()
    if isinstance(event, Ready):
        # A first frame as soon as nothing can be missed any more: clients may wait for it.
        return ServerSentEvent(comment="subscribed").encode()
    return ServerSentEvent(_OVERFLOW, event="overflow").encode()


async def _chunks(
    feed: AsyncGenerator[list[FeedEvent], None],
    result: Callable[[ProbeResult], bytes],
    end_id: str | None = None,
) -> AsyncIterator[bytes]:
    """One write per batch of events, not per event: with many clients and busy experiments
    the sends, not the events, are what costs."""
    async with aclosing(feed):  # closed with the response, so it unsubscribes at once
        async for batch in feed:
            yield b"".join(
                result(event) if isinstance(event, ProbeResult) else _frame(event, end_id)
                for event in batch
            )


@router.get(
    "/api/v1/experiments/{experiment_id}/events",
    response_model=None,
    responses={
        **_STREAM,
        **_NOT_FOUND,
        204: {
            "description": "A reconnect (Last-Event-ID) after the last result of an "
            "experiment that is over: nothing more will come, and EventSource stops."
        },
    },
)
async def experiment_events(
    experiment_id: ExperimentIdPath,
    experiments: ExperimentsDep,
    live: LiveDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
    after: AfterQuery = None,
    location: LocationQuery = None,
) -> Response:
    """`result` (id: seq) and `state` events of one experiment; ends after a terminal state.

    Starts live, or with `Last-Event-ID: N` / `?after=N` replays the stored results after
    seq N first, with no gap and no duplicate. Of an experiment with `locations`: every
    location's results live (each says where it ran, with no id: they share no one seq
    order), or with `location` that location's, resumable as above.
    """
    start = after if last_event_id is None else last_event_id
    # Looked up now, so that an unknown id is a 404 in JSON before the stream starts.
    reconnect = last_event_id is not None
    with query_errors():
        feed = await experiments.feed(
            live, experiment_id, start, reconnect=reconnect, location=location
        )
    if feed is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    if feed.numbered:
        return feed_response(settings, _chunks(feed.events, _experiment_result))
    # Its results carry no id; its end does (-1), so that a browser's reconnect after it
    # says so, and gets the 204 that stops it.
    return feed_response(settings, _chunks(feed.events, _located_result, end_id="-1"))


@router.get(
    "/api/v1/load-runs/{run_id}/events",
    response_model=None,
    responses={
        **_STREAM,
        404: {"description": "No load run with this id."},
        204: {"description": "A reconnect after the last second of a run that is over."},
    },
)
async def load_run_events(
    run_id: LoadRunIdPath,
    store: StoreDep,
    live: LiveDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
    after: AfterQuery = None,
) -> Response:
    """`second` (id: the second) and `state` events of one load run; ends after a terminal
    state. `Last-Event-ID: N` / `?after=N` replays the stored seconds after N first."""
    job = await store.get_job(LOAD, run_id)  # an unknown id is a 404 before the stream
    start = after if last_event_id is None else last_event_id
    if last_event_id is not None and nothing_after_second(job, last_event_id):
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    feed = load_run_feed(store, live, run_id, start, linger_s=FEED_LINGER_S)
    return feed_response(settings, _chunks(feed, _any_result))


@router.get("/api/v1/events", response_model=None, responses=_STREAM)
async def all_events(
    live: LiveDep, settings: SettingsDep, include: IncludeQuery = None
) -> EventSourceResponse:
    """`state` events of every job of every kind, live; `?include=results` adds `result`
    events of every experiment (their data carries `experiment_id`, and they have no id)."""
    feed = jobs_feed(live, results=include == "results", linger_s=FEED_LINGER_S)
    return feed_response(settings, _chunks(feed, _any_result))
