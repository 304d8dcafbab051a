"""The client's ``GET /stats``: its own counts and each service's ``/stats``, fetched from
the URLs the settings give them (``LATLAB_PIPELINE_RECEIVER_URL``, ``…_HANDLER_URL``,
``…_WRITER_URL``), so one call shows where a run is, wherever the services run."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from latlab.measure.request import RequestError, RequestSpec, parse_url

STATUS_TIMEOUT_S = 2.0
MAX_STATUS_BYTES = 64 * 1024


async def service_stats(base_url: str) -> dict[str, Any]:
    """``{base_url}/stats`` as JSON, or ``{"error": why}`` if it cannot be had."""
    try:
        url = parse_url(base_url.rstrip("/") + "/stats")
        if url.scheme != "http":
            return {"error": "only http URLs are read"}
        async with asyncio.timeout(STATUS_TIMEOUT_S):
            body = await _get(url.host, url.port, RequestSpec("GET").encode(url, keep_alive=False))
        stats: dict[str, Any] = json.loads(body)
        return stats
    except RequestError as exc:
        return {"error": str(exc)}
    except TimeoutError:
        return {"error": f"no answer within {STATUS_TIMEOUT_S:g} s"}
    except (OSError, ValueError) as exc:
        return {"error": str(exc) or type(exc).__name__}


async def _get(host: str, port: int, request: bytes) -> bytes:
    """The body of the answer to ``request`` (sent with ``Connection: close``)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        answer = await reader.read(MAX_STATUS_BYTES + 1)
        while chunk := await reader.read(MAX_STATUS_BYTES):
            answer += chunk
            if len(answer) > MAX_STATUS_BYTES:
                raise ValueError("answer too large")
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1") or "no answer")
    return body
