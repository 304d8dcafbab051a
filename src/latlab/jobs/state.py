"""The job state machine: ``created -> running <-> paused -> completed | stopped | failed``."""

from __future__ import annotations

from enum import StrEnum

from latlab.storage.records import JobState


class Action(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"


class InvalidTransition(Exception):
    def __init__(self, kind: str, job_id: int, state: JobState, action: Action) -> None:
        super().__init__(f"cannot {action} {kind} job {job_id}: it is {state}")
        self.kind = kind
        self.job_id = job_id
        self.state = state
        self.action = action


_RUNNABLE = {JobState.CREATED, JobState.RUNNING, JobState.PAUSED}

# action -> (states it may be taken from, state it leads to). A start on a running job and a
# pause on a paused one are no-ops rather than errors: clients retry, and that must be safe.
TRANSITIONS: dict[Action, tuple[frozenset[JobState], JobState]] = {
    Action.START: (frozenset(_RUNNABLE), JobState.RUNNING),
    Action.RESUME: (frozenset({JobState.PAUSED, JobState.RUNNING}), JobState.RUNNING),
    Action.PAUSE: (frozenset({JobState.RUNNING, JobState.PAUSED}), JobState.PAUSED),
    Action.STOP: (frozenset(_RUNNABLE), JobState.STOPPED),
}


def next_state(kind: str, job_id: int, state: JobState, action: Action) -> JobState:
    """The state ``action`` leads to from ``state``, or :class:`InvalidTransition`."""
    allowed, target = TRANSITIONS[action]
    if state not in allowed:
        raise InvalidTransition(kind, job_id, state, action)
    return target
