"""What the browser tests share: Debian's Chromium, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's; scripts/test-services.sh installs it


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the pages' screenshots go, as artifacts: LATLAB_SCREENSHOTS_DIR if set."""
    directory = Path(os.environ.get("LATLAB_SCREENSHOTS_DIR", tmp_path))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium, driven by Playwright (``playwright install`` cannot download)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()
