from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from serving.app import serving


@pytest.fixture
async def port() -> AsyncIterator[int]:
    """The test service, in the test's loop, on a free port."""
    async with serving() as server:
        yield server.port
