"""Asking whichever process runs a job, and getting its answer, over Redis pub/sub.

The asker subscribes to a reply channel of its own, then publishes the question on the
shared channel; the process that runs the job answers, the others stay silent. No answer
within the timeout means no live process runs it. A worker or an API process answers for
the jobs it runs (a load run's rate change, say) within milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from latlab.cancellation import deliver_lost_cancel

log = logging.getLogger("latlab.coordination")

if TYPE_CHECKING:
    import redis.asyncio as redis

ASK_TIMEOUT_S = 1.0
Body = dict[str, Any]
# (kind, job_id, body) -> the answer, or None when the job does not run here.
Answerer = Callable[[str, int, Body], Awaitable[Body | None]]


class OwnerRequests:
    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._asks = f"{prefix}:asks"

    async def ask(
        self, kind: str, job_id: int, body: Body, timeout_s: float = ASK_TIMEOUT_S
    ) -> Body | None:
        """The answer of the process that runs the job; None if none answers in time."""
        reply = f"{self._prefix}:answers:{uuid.uuid4().hex}"
        question = json.dumps({"reply": reply, "kind": kind, "id": job_id, "body": body})
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(reply)  # before asking: the answer may come at once
            await self._redis.publish(self._asks, question)
            async with asyncio.timeout(timeout_s):
                while (message := await pubsub.get_message(timeout=timeout_s)) is None:
                    deliver_lost_cancel()  # the timeout's cancel, should a read swallow it
            answer: Body = json.loads(message["data"])
            return answer
        except TimeoutError:
            return None
        finally:
            await pubsub.aclose()

    async def serve(self, answer: Answerer) -> None:
        """Answer the questions about jobs that run here until cancelled (supervised). Each
        in a task of its own: one that waits (for a load run's pool to start) holds up none
        of the others."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        answering: set[asyncio.Task[None]] = set()
        try:
            await pubsub.subscribe(self._asks)
            while True:
                deliver_lost_cancel()  # the last read may have swallowed a stop (gh-86296)
                message = await pubsub.get_message(timeout=1.0)
                question = None if message is None else self._question(message["data"])
                if question is not None:
                    task = asyncio.create_task(self._answer(question, answer))
                    answering.add(task)
                    task.add_done_callback(answering.discard)
        finally:
            for task in answering:
                task.cancel()
            await asyncio.gather(*answering, return_exceptions=True)
            await pubsub.aclose()

    def _question(self, data: object) -> Body | None:
        """A question as this version asks it, else None (logged): a stray message must not
        stop the answering, nor make it publish anywhere but on an asker's reply channel."""
        try:
            question = json.loads(str(data))
            fine = (
                isinstance(question, dict)
                and isinstance(question.get("kind"), str)
                and type(question.get("id")) is int
                and isinstance(question.get("body"), dict)
                and str(question.get("reply")).startswith(f"{self._prefix}:answers:")
            )
        except ValueError:
            fine = False
        if not fine:
            log.warning("ignoring a question that is not one: %.200s", data)
            return None
        checked: Body = question
        return checked

    async def _answer(self, question: Body, answer: Answerer) -> None:
        kind, job_id = str(question["kind"]), int(question["id"])
        try:
            found = await answer(kind, job_id, question["body"])
            if found is not None:
                await self._redis.publish(str(question["reply"]), json.dumps(found))
        except Exception:  # the asker hears nothing, and gives up in time
            log.exception("answering a question about %s %s failed", kind, job_id)
