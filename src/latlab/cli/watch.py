"""``latlab experiment watch ID``: a live view of an experiment until it ends.

Once a second it reads the experiment, its stats and its last results, and draws the
progress, p50 / p99, errors and a sparkline of the last latencies. Exit status 0 once it
completed, 1 if it failed or was stopped, 130 on Ctrl-C (which stops the watching, not the
experiment).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from latlab.cli.remote import Server

EVERY_S = 1.0
SPARK_POINTS = 60
BARS = "▁▂▃▄▅▆▇█"
ENDED = {"completed": 0, "failed": 1, "stopped": 1}


def sparkline(latencies_ms: Sequence[float | None]) -> str:
    """One character per latency, from ▁ (the lowest shown) to █ (the highest); ✕ failed."""
    known = [value for value in latencies_ms if value is not None]
    if not known:
        return ""
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    return "".join(
        "✕" if value is None else BARS[round((value - low) / span * (len(BARS) - 1))]
        for value in latencies_ms
    )


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def render(
    experiment: dict[str, Any], stats: dict[str, Any], recent: list[dict[str, Any]]
) -> Group:
    spec = experiment["settings"]
    planned = spec["count"] * len(spec.get("locations") or [None])
    figures = Table.grid(padding=(0, 3))
    figures.add_row(
        f"experiment {experiment['id']}: {experiment['state']}",
        f"{experiment['done']}/{planned} probes",
        f"p50 {ms(stats['p50_ms'])}",
        f"p99 {ms(stats['p99_ms'])}",
        f"errors {stats['errors']}",
    )
    latencies = [None if r["latency_ms"] < 0 else r["latency_ms"] for r in recent]
    # The bar in a row of its own: a bare ProgressBar ends no line, and the sparkline ran on
    # after it, cut at the console's width.
    bar = Table.grid()
    bar.add_row(ProgressBar(total=planned, completed=experiment["done"], width=60))
    return Group(figures, bar, Text(sparkline(latencies), style="cyan"))


def _read(api: Server, experiment_id: int) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    experiment = api.call("GET", f"/experiments/{experiment_id}")
    stats = api.call("GET", f"/experiments/{experiment_id}/stats")
    return experiment, stats, _recent(api, experiment)


def _recent(api: Server, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    """The last results by start time, of every location (the server sorts them)."""
    path = f"/experiments/{experiment['id']}/recent"
    found: list[dict[str, Any]] = api.call("GET", path, params={"limit": SPARK_POINTS})["data"]
    return found


def watch_experiment(api: Server, experiment_id: int, console: Console | None = None) -> int:
    console = console or Console()
    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                experiment, stats, recent = _read(api, experiment_id)
                live.update(render(experiment, stats, recent), refresh=True)
                if experiment["state"] in ENDED:
                    return ENDED[experiment["state"]]
                time.sleep(EVERY_S)
    except KeyboardInterrupt:
        return 130
    finally:
        api.close()
