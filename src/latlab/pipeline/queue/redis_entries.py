"""The Redis queue's stream entries: a receipt as an entry's fields and back, and replies."""

from __future__ import annotations

from typing import Any

from latlab.pipeline.receipts import Incoming, Receipt, micros_of, moment_of

OK = "ok"
FAILED = "error: "

Entry = tuple[str, dict[str, str]]  # a stream entry: its ID and fields


def entries_of(reply: Any) -> list[Entry]:
    """The entries of a one-stream XREAD or XREADGROUP reply (nothing: ``None`` or [])."""
    return [(str(id_), dict(fields)) for id_, fields in reply[0][1]] if reply else []


def seq_of(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def fields_of(incoming: Incoming) -> dict[str, str]:
    """A receipt's fields in its stream entry, in the order the append script takes them."""
    return {
        "request_id": incoming.request_id,
        "delay_s": repr(incoming.delay_s),
        "receive_time_us": str(micros_of(incoming.receive_time)),
        "run_id": incoming.run_id or "",
    }


def receipt_of(
    seq: int, fields: dict[str, str], *, tries: int = 0, outcome: str | None = None
) -> Receipt:
    return Receipt(
        seq=seq,
        request_id=fields["request_id"],
        delay_s=float(fields["delay_s"]),
        receive_time=moment_of(int(fields["receive_time_us"])),
        run_id=fields["run_id"] or None,
        tries=tries,
        done=outcome is not None,
        error=outcome.removeprefix(FAILED) if outcome and outcome != OK else None,
    )
