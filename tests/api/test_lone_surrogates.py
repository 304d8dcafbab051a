"""JSON may escape a lone UTF-16 surrogate (``"\\ud800"``); Python reads it into a str that
cannot be encoded as UTF-8. Echoed back in a 422, it must not turn the answer into a 500."""

from __future__ import annotations

import httpx
import pytest

LONE = '"\\ud800"'  # the JSON text "\ud800": a high surrogate with no low one


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/experiments", f"{{{LONE}: 1}}"),
        ("/api/v1/experiments", f"[{{{LONE}: 1}}]"),
        ("/api/v1/experiments", f'{{"host": {LONE}, "port": 1}}'),
        ("/api/v1/bots", f"{{{LONE}: 1}}"),
        ("/start", f"{{{LONE}: 1}}"),
        ("/start", LONE),
    ],
    ids=["unknown-key", "bulk", "host", "v1-bot", "seed-bot", "seed-bot-string"],
)
async def test_a_lone_surrogate_gets_a_422_not_a_500(
    api: httpx.AsyncClient, path: str, body: str
) -> None:
    headers = {"Content-Type": "application/json"}
    response = await api.post(path, content=body.encode(), headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"]
    assert (await api.get("/api/v1/experiments")).json()["count"] == 0
