"""Bots: counters that print ``start_number``, ``start_number + 1``, … once a tick.

A running bot's checkpoint is ``{"number", "at_ms", "fleet"}``: it printed ``number`` at the
grid time ``at_ms`` (epoch ms) and then one more every tick. Its fleet records one heartbeat,
"every tick due up to here is done", so one small write per tick covers every bot, and the
last printed number follows from the two: see :func:`last_printed`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

KIND = "bot"
# Integers a JSON number keeps exactly everywhere (JavaScript, BSON int64 after a long run).
NUMBER_LIMIT = 2**53


class BotSpec(BaseModel):
    """What a bot counts from. Strict: "12", 12.5 and true are not numbers to start from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_number: Annotated[
        StrictInt, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT, description="First number printed.")
    ] = 0


def heartbeat_key(fleet_id: str) -> str:
    return f"bots.heartbeat.{fleet_id}"


def last_printed(progress: dict[str, Any], heartbeat_ms: int | None, tick_ms: int) -> int:
    """The last number a bot printed, from its checkpoint and its fleet's heartbeat.

    The first number is printed before the bot's start is answered, so it always counts.
    A tick that ran after the last heartbeat reached the store is counted as not run: after
    a crash that number is printed again (at least once, never a gap).
    """
    number = int(progress["number"])
    if heartbeat_ms is None:
        return number
    return number + max(0, (heartbeat_ms - int(progress["at_ms"])) // tick_ms)
