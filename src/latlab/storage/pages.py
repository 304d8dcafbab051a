"""Reading a job's records page by page, whatever their kind."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from latlab.storage.base import ResultStream
from latlab.storage.records import R


async def pages(
    stream: ResultStream[R], job_id: int, first_seq: int, size: int
) -> AsyncGenerator[list[R], None]:
    """The job's records from ``seq == first_seq`` on, ``size`` at a time; no empty page."""
    while True:
        page = await stream.list(job_id, offset=first_seq, limit=size)
        if page:
            yield page
        if len(page) < size:
            return
        first_seq = page[-1].seq + 1
