"""The original bot service's README flow, codes and shapes; bad input stores nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from conftest import STORE_KINDS


async def start(api: httpx.AsyncClient, payload: Any = None) -> int:
    response = (
        await api.post("/start", json=payload) if payload is not None else await api.post("/start")
    )
    assert response.status_code == 201, response.text
    bot_id: int = response.json()["bot_id"]
    return bot_id


@pytest.mark.parametrize("store_url", STORE_KINDS, indirect=True)
async def test_readme_flow_on_every_store(api: httpx.AsyncClient) -> None:
    first = await start(api, {"start_number": 12})
    second = await start(api)
    assert second > first
    assert (await api.get("/active_bots")).json() == {"active_bots": [second, first]}

    stopped = await api.get(f"/stop/{second}")
    assert (stopped.status_code, stopped.content) == (204, b"")
    again = await api.get(f"/stop/{second}")
    assert again.status_code == 404
    assert again.json() == {"detail": f"cannot stop bot {second}: it is stopped"}
    assert (await api.get("/active_bots")).json() == {"active_bots": [first]}

    history = (await api.get("/bots_history")).json()
    alive = history[0]
    assert (alive["bot_id"], alive["start_number"], alive["end"]) == (first, 12, "still alive")
    ended = history[1]
    assert (ended["bot_id"], ended["start_number"]) == (second, 0)
    assert datetime.fromisoformat(ended["end"]) >= datetime.fromisoformat(ended["start"])
    assert ended["last_number"] >= 0
    assert history[0]["last_number"] >= 12
    assert all(h["duration_s"] >= 0 for h in history)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (None, {}),
        (b"", {"Content-Type": "application/json"}),
        (b"{}", {"Content-Type": "application/json"}),
    ],
)
async def test_no_body_or_empty_object_counts_from_zero(
    api: httpx.AsyncClient, content: bytes | None, headers: dict[str, str]
) -> None:
    response = await api.post("/start", content=content, headers=headers)
    assert response.status_code == 201
    bot = (await api.get(f"/api/v1/bots/{response.json()['bot_id']}")).json()
    assert bot["start_number"] == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"start_number": "abc"}', "valid integer"),
        (b'{"start_number": "12"}', "valid integer"),
        (b'{"start_number": 12.5}', "valid integer"),
        (b'{"start_number": true}', "valid integer"),
        (b'{"start_number": null}', "valid integer"),
        (b'{"start_number": 1e999}', "valid integer"),
        (b'{"start_number": 9007199254740993}', "less than or equal to"),
        (b'{"start_number": 1, "speed": 2}', "Extra inputs"),
        (b"[12]", "valid dictionary"),
        (b"12", "valid dictionary"),
        (b"{not json", "JSON decode error"),
    ],
)
async def test_bad_bodies_are_422_and_start_nothing(
    api: httpx.AsyncClient, body: bytes, says: str
) -> None:
    response = await api.post("/start", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert says in str(response.json()["detail"])
    assert (await api.get("/active_bots")).json() == {"active_bots": []}
    assert (await api.get("/bots_history")).json() == []


@pytest.mark.parametrize(
    ("bot_id", "status"), [("abc", 422), ("0", 422), ("-4", 422), ("987654", 404)]
)
async def test_stop_of_a_malformed_or_unknown_id(
    api: httpx.AsyncClient, bot_id: str, status: int
) -> None:
    assert (await api.get(f"/stop/{bot_id}")).status_code == status


async def test_v1_lists_gets_and_stops_with_409_when_already_stopped(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post("/api/v1/bots", json={"start_number": 7})
    assert created.status_code == 201
    bot = created.json()
    assert (bot["state"], bot["start_number"], bot["last_number"]) == ("running", 7, 7)
    other = await start(api)
    page = (await api.get("/api/v1/bots", params={"limit": 1, "offset": 1})).json()
    assert ([b["id"] for b in page["data"]], page["count"]) == ([other], 2)
    stopped = await api.post(f"/api/v1/bots/{bot['id']}/stop")
    assert stopped.json()["state"] == "stopped"
    assert stopped.json()["ended_at"] is not None
    conflict = await api.post(f"/api/v1/bots/{bot['id']}/stop")
    assert conflict.status_code == 409
    running = (await api.get("/api/v1/bots", params={"state": "running"})).json()
    assert [b["id"] for b in running["data"]] == [other]
    assert (await api.get("/api/v1/bots/987654")).status_code == 404


async def test_swagger_is_served_at_apidocs_too(api: httpx.AsyncClient) -> None:
    for path in ("/apidocs/", "/docs"):
        page = await api.get(path)
        assert page.status_code == 200
        assert "swagger-ui" in page.text
