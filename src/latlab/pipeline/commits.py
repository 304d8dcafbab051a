"""Group commit: many requests' appends made durable in one write.

While one batch is being written, the appends that arrive wait together and go in the next
write, so each acknowledgement waits for at most about two writes however many arrive.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from latlab.pipeline.receipts import Incoming, Receipt

WriteBatch = Callable[[Sequence[Incoming]], Awaitable[list[Receipt]]]


class GroupCommit:
    def __init__(self, write: WriteBatch, max_batch: int = 1000) -> None:
        self._write = write
        self._max_batch = max_batch
        self._waiting: list[tuple[Incoming, asyncio.Future[Receipt]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, incoming: Incoming) -> Receipt:
        """``incoming``'s receipt, once it is durable (raises what the write raised)."""
        return await self.submit(incoming)

    def submit(self, incoming: Incoming) -> asyncio.Future[Receipt]:
        """A future of ``incoming``'s receipt: it is written even if nobody waits for it."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiting.append((incoming, future))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
        return future

    async def _write_all(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._write_one(batch)
        finally:
            self._writer = None

    async def _write_one(self, batch: list[tuple[Incoming, asyncio.Future[Receipt]]]) -> None:
        try:
            receipts = await self._write([incoming for incoming, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), receipt in zip(batch, receipts, strict=True):
            if not future.done():  # its request may have gone (client hung up)
                future.set_result(receipt)

    async def close(self) -> None:
        """Wait for the writes under way (their receipts are durable: they must be answered)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)
