"""Which pymongo errors mean "the server cannot be reached right now"."""

from __future__ import annotations

from pymongo.errors import ConnectionFailure, PyMongoError

from latlab.storage.outage import translating


def is_outage(exc: BaseException) -> bool:
    # ConnectionFailure covers AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError.
    if isinstance(exc, ConnectionFailure | OSError):
        return True
    return isinstance(exc, PyMongoError) and exc.timeout


translated = translating(is_outage)
