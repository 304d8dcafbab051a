"""Logging for the serving commands: lines written during start-up are held back until it ends.

Start-up that fails for an ordinary reason should print one line, the reason; the INFO lines
written before it (targets up, migrations run) would bury it. So they wait here, and are
printed once LatLab serves (or with ``--verbose``, or above a traceback).
"""

from __future__ import annotations

import collections
import logging

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Start-up rarely writes more; past this the oldest held lines are dropped.
_MOST_HELD = 10_000


class StartupLog(logging.Handler):
    """The root logger's handler until :meth:`end_startup`, then stderr's."""

    def __init__(self) -> None:
        super().__init__()
        self.serving = False
        self._held: collections.deque[logging.LogRecord] = collections.deque(maxlen=_MOST_HELD)
        self._stderr = logging.StreamHandler()
        self._stderr.setFormatter(logging.Formatter(_FORMAT))
        root = logging.getLogger()
        root.addHandler(self)
        root.setLevel(logging.INFO)
        # Alembic announces every plugin it loads at INFO; only its migrations are worth a line.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    @staticmethod
    def set_level(level: str) -> None:
        logging.getLogger().setLevel(level.upper())

    def emit(self, record: logging.LogRecord) -> None:
        self._held.append(record)

    def end_startup(self, *, keep: bool) -> None:
        """From now on log lines go straight to stderr; the held ones too if ``keep``."""
        root = logging.getLogger()
        root.removeHandler(self)
        root.addHandler(self._stderr)
        while self._held:
            record = self._held.popleft()
            if keep:
                self._stderr.handle(record)

    def started(self) -> None:
        """LatLab serves: print what start-up logged, and let later errors pass as they are."""
        self.end_startup(keep=True)
        self.serving = True
