"""What the browser tests share: Debian's Chromium, and where screenshots go."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

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


# Pixels of the first chart's left axis (its labels) as light as the dark theme's text:
# none when uPlot draws them in its own dark grey.
LIGHT_AXIS_PIXELS = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, 40, canvas.height);
  let light = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 450) light++;
  return light;
}"""


@pytest.fixture
def light_axis_pixels() -> Callable[[Page, str], Awaitable[int]]:
    """How many light pixels the labels of the chart ``selector``'s left axis have."""

    async def count(page: Page, selector: str) -> int:
        return int(await page.locator(f"{selector} canvas").first.evaluate(LIGHT_AXIS_PIXELS))

    return count
