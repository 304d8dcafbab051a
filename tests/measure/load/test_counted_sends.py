"""``-n N`` counts exactly N even when every send opens a connection and the warm-up's
last sends are still connecting as the count starts (a send is counted, or not, when it is
decided, and a worker never starts before its start time: uvloop's timers wake early)."""

from __future__ import annotations

import socket

from scripted import Answer, ScriptedTarget

from latlab.measure.load.plan import LoadPlan
from latlab.measure.load.pool import LoadPool
from latlab.measure.request import parse_url

LOCAL = (int(socket.AF_INET), "127.0.0.1")


async def counted(plan: LoadPlan) -> int:
    pool = LoadPool(plan, LOCAL)
    total = 0
    try:
        await pool.start()
        async for second in pool.seconds():
            total += second.requests
    finally:
        await pool.close()
    return total


async def test_n_requests_count_exactly_n_when_every_send_opens_a_connection() -> None:
    async with ScriptedTarget(script=lambda _n: Answer(close=True)) as target:
        url = parse_url(f"http://127.0.0.1:{target.port}/")
        plan = LoadPlan(url, connections=64, requests=500, duration_s=None, warmup_s=0.3)
        totals = [await counted(plan) for _ in range(5)]
    assert totals == [500] * 5
