"""Group commit for creations: concurrent creates of one kind share one transaction.

Each caller still gets all-or-nothing for its own specs: if a shared transaction fails on
what one caller asked (a spec the store cannot hold), every caller of that group is retried
alone, so only that caller sees the error. An outage fails them all, as it would alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from latlab.storage.base import Store, StoreUnavailable
from latlab.storage.records import JobRecord, JobState

GroupKey = tuple[str, JobState]
Request = tuple[Sequence[Mapping[str, Any]], "asyncio.Future[list[JobRecord]]"]


class GroupCreator:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: dict[GroupKey, list[Request]] = {}
        self._groups: set[asyncio.Task[None]] = set()  # kept: a caller may be cancelled

    async def create_jobs(
        self, kind: str, specs: Sequence[Mapping[str, Any]], state: JobState
    ) -> list[JobRecord]:
        key = (kind, state)
        done: asyncio.Future[list[JobRecord]] = asyncio.get_running_loop().create_future()
        if key not in self._pending:
            group = asyncio.create_task(self._commit(key), name=f"latlab-create-{kind}")
            self._groups.add(group)
            group.add_done_callback(self._groups.discard)
        self._pending.setdefault(key, []).append((specs, done))
        return await asyncio.shield(done)

    async def _commit(self, key: GroupKey) -> None:
        await asyncio.sleep(0)  # every create already under way in this loop turn joins
        requests = self._pending.pop(key)
        try:
            created = await self._store.create_jobs(
                key[0], [spec for specs, _ in requests for spec in specs], state=key[1]
            )
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) or len(requests) == 1:
                _fail(requests, exc)
            else:
                await self._one_by_one(key, requests)
        else:
            _hand_out(requests, created)

    async def _one_by_one(self, key: GroupKey, requests: list[Request]) -> None:
        for specs, done in requests:
            try:
                done.set_result(await self._store.create_jobs(key[0], specs, state=key[1]))
            except Exception as exc:  # this caller's own error, as if it had been alone
                done.set_exception(exc)

    async def close(self) -> None:
        await asyncio.gather(*self._groups, return_exceptions=True)


def _hand_out(requests: list[Request], created: list[JobRecord]) -> None:
    start = 0
    for specs, done in requests:
        done.set_result(created[start : start + len(specs)])
        start += len(specs)


def _fail(requests: list[Request], exc: BaseException) -> None:
    for _, done in requests:
        done.set_exception(exc)
