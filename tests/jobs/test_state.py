from __future__ import annotations

import pytest

from latlab.jobs.state import Action, InvalidTransition, next_state
from latlab.storage import JobState

S = JobState
ALLOWED = {
    (S.CREATED, Action.START): S.RUNNING,
    (S.RUNNING, Action.START): S.RUNNING,
    (S.PAUSED, Action.START): S.RUNNING,
    (S.PAUSED, Action.RESUME): S.RUNNING,
    (S.RUNNING, Action.RESUME): S.RUNNING,
    (S.RUNNING, Action.PAUSE): S.PAUSED,
    (S.PAUSED, Action.PAUSE): S.PAUSED,
    (S.CREATED, Action.STOP): S.STOPPED,
    (S.RUNNING, Action.STOP): S.STOPPED,
    (S.PAUSED, Action.STOP): S.STOPPED,
}


@pytest.mark.parametrize("state", list(JobState))
@pytest.mark.parametrize("action", list(Action))
def test_transition_table(state: JobState, action: Action) -> None:
    expected = ALLOWED.get((state, action))
    if expected is None:
        with pytest.raises(InvalidTransition, match=f"cannot {action} probe job 7: it is {state}"):
            next_state("probe", 7, state, action)
    else:
        assert next_state("probe", 7, state, action) is expected


def test_terminal_states_allow_nothing() -> None:
    terminal = {S.COMPLETED, S.STOPPED, S.FAILED}
    assert not any(state in terminal for state, _ in ALLOWED)
