"""The receiver: ``POST /handler`` validates, stamps, makes the request durable, answers.

"Ok" means durable, never processed: the answer waits only for the group commit
(``commits.py``), so ack latency does not depend on a request's ``delay``. A body the
receiver refuses gets a 422 saying why, and nothing is enqueued.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from time import monotonic

from prometheus_client.core import Metric

from latlab.pipeline.commits import GroupCommit
from latlab.pipeline.guard import TrafficGuard
from latlab.pipeline.metrics import LatencyBuckets, MetricsPage, counter
from latlab.pipeline.outage import OutageLog
from latlab.pipeline.queue.base import PipelineQueue
from latlab.pipeline.receipts import BadRequest, Incoming, Receipt, parse_request
from latlab.serving.routes import Answer, Router, route
from latlab.serving.wire import Request, Response, detail, json_response

logger = logging.getLogger(__name__)

OK = json_response(HTTPStatus.OK, {"asyncAnswer": "Ok"})
NOT_JSON = detail(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
NOT_DURABLE = detail(HTTPStatus.SERVICE_UNAVAILABLE, "the queue is unavailable: not acknowledged")


class Receiver:
    def __init__(
        self,
        queue: PipelineQueue,
        *,
        max_delay_s: float,
        guard: TrafficGuard | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._guard = guard
        self._commits = GroupCommit(queue.append)
        self._max_delay_s = max_delay_s
        self._now = now
        self.received = 0
        self.refused = 0
        self.failed = 0  # valid, but the queue could not take it: not acknowledged
        self.enqueue = LatencyBuckets()  # request in -> durable
        # Redis down under load: one warning, not a traceback per request.
        self._outage = OutageLog(logger, "receiver", "answering 503 until the queue answers")

    def router(self) -> Router:
        return Router(
            {
                b"/handler": route(self.handle, ("POST",)),
                b"/stats": route(self.stats),
                b"/metrics": route(MetricsPage(self.figures).handle),
            }
        )

    def handle(self, request: Request) -> Answer:
        refusal = self._guard.refusal(request) if self._guard is not None else None
        if refusal is None and not _is_json(request.content_type):
            # A web page can POST text/plain anywhere without asking; JSON it cannot.
            refusal = NOT_JSON
        if refusal is not None:
            self.refused += 1
            return refusal
        try:
            incoming = parse_request(request.body, self._max_delay_s, self._now())
        except BadRequest as exc:
            self.refused += 1
            return detail(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc))
        return self._acknowledge(incoming)

    def _acknowledge(self, incoming: Incoming) -> asyncio.Future[Response]:
        """The answer, set once ``incoming`` is durable: a future, not a task of its own."""
        durable = self._commits.submit(incoming)
        answer: asyncio.Future[Response] = durable.get_loop().create_future()
        durable.add_done_callback(functools.partial(self._answer, monotonic(), answer))
        return answer

    def _answer(
        self, began_s: float, answer: asyncio.Future[Response], durable: asyncio.Future[Receipt]
    ) -> None:
        # Counted when durable, whether or not the client is still there to hear it (its
        # answer is cancelled if it hung up).
        self._counted(began_s, durable)
        if not answer.done():
            failed = durable.cancelled() or durable.exception() is not None
            answer.set_result(NOT_DURABLE if failed else OK)  # a failure: logged by _counted

    def _counted(self, began_s: float, durable: asyncio.Future[Receipt]) -> None:
        if durable.cancelled():
            self.failed += 1
            return
        failure = durable.exception()
        if failure is not None:
            self.failed += 1
            self._outage.failed("enqueueing a request", failure, began_s)
            return
        self._outage.succeeded(began_s)
        self.enqueue.add((monotonic() - began_s) * 1000)
        self.received += 1

    def figures(self) -> Iterable[Metric]:
        yield counter("latlab_pipeline_received", "Requests acknowledged (durable)", self.received)
        yield counter("latlab_pipeline_refused", "Requests refused (4xx)", self.refused)
        yield counter(
            "latlab_pipeline_enqueue_failed", "Requests the queue could not take", self.failed
        )
        yield self.enqueue.family(
            "latlab_pipeline_enqueue_seconds", "From a request's arrival to it being durable"
        )

    def stats(self, _request: Request) -> Response:
        counts = {"received": self.received, "refused": self.refused, "failed": self.failed}
        return json_response(HTTPStatus.OK, counts)

    async def close(self) -> None:
        await self._commits.close()


def _is_json(content_type: bytes | None) -> bool:
    return (
        content_type is not None
        and content_type.split(b";")[0].strip().lower() == b"application/json"
    )
