"""The seed routes' JSON answers, written page by page.

The original service answered every result of an experiment (and of every experiment), and
every bot, in one document; LatLab keeps that shape, byte for byte, but builds it from pages:
memory stays constant, and the event loop waits at most for one page (read and encoded, a few
ms) before it serves other requests again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic import TypeAdapter

from latlab.api.bot_schemas import BotHistoryEntry
from latlab.api.schemas import Experiment, ExperimentResult, seed_experiment
from latlab.jobs.kinds.bot import BotRunner
from latlab.jobs.queries import BotQueries, ExperimentQueries
from latlab.storage import JobRecord, JobState

# Encoded in ~5 ms (bench/result_dump.py: worst loop stall 9.6 ms CPU at 500, 12.7 at 250,
# 17 at 1,000; 500 dumps as fast as one whole document did, 250 took 1.8x as long).
RESULTS_PAGE = 500
EXPERIMENTS_PAGE = 100
BOTS_PAGE = 500  # ~10 ms to read into records, build and encode
CHUNK_BYTES = 64 * 1024  # small pieces are gathered up to this before they are sent

_EXPERIMENT = TypeAdapter(Experiment)
_RESULTS = TypeAdapter(list[ExperimentResult])
_BOT_HISTORY = TypeAdapter(list[BotHistoryEntry])
_NO_RESULTS = b'"results":[]'


def _framing(job: JobRecord) -> tuple[bytes, bytes]:
    """The experiment's JSON before and after its results, as the response model writes it."""
    whole = _EXPERIMENT.dump_json(seed_experiment(job, []))
    # The last occurrence: only timestamps follow the results, and none holds a quote.
    head, found, tail = whole.rpartition(_NO_RESULTS)
    assert found, "Experiment must serialize its results as a list"
    return head + b'"results":[', b"]" + tail


async def experiment_json(experiments: ExperimentQueries, job: JobRecord) -> AsyncIterator[bytes]:
    """One experiment with every result, as ``Experiment`` JSON, a page of results a chunk."""
    head, tail = _framing(job)
    yield head
    separator = b""
    async for page in experiments.results_from(job, RESULTS_PAGE):
        encoded = _RESULTS.dump_json(_RESULTS.validate_python(page, from_attributes=True))
        yield separator + encoded[1:-1]
        separator = b","
        await asyncio.sleep(0)  # a store that never waits (memory) must not hold the loop
    yield tail


async def experiments_json(experiments: ExperimentQueries) -> AsyncIterator[bytes]:
    """Every experiment with its results, as a JSON list of ``Experiment``."""
    buffer = bytearray(b"[")
    separator = b""
    async for jobs in experiments.pages(EXPERIMENTS_PAGE):
        for job in jobs:
            buffer += separator
            separator = b","
            async for chunk in experiment_json(experiments, job):
                buffer += chunk
                if len(buffer) >= CHUNK_BYTES:
                    yield bytes(buffer)
                    buffer.clear()
    buffer += b"]"
    yield bytes(buffer)


async def bots_history_json(records: BotQueries, bots: BotRunner) -> AsyncIterator[bytes]:
    """Every bot that ran, in the order they started, as a JSON list of ``BotHistoryEntry``."""
    yield b"["
    separator = b""
    async for jobs in records.pages(BOTS_PAGE):
        started = [job for job in jobs if job.state is not JobState.CREATED]
        # last_number reads no store: the job's progress, or this process's running bot.
        entries = [BotHistoryEntry.of(job, await bots.last_number(job)) for job in started]
        if entries:
            yield separator + _BOT_HISTORY.dump_json(entries)[1:-1]
            separator = b","
        await asyncio.sleep(0)  # a store that never waits (memory) must not hold the loop
    yield b"]"
