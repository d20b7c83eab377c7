"""What the browser tests share: one Chromium for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} not installed; 'apt-get install --no-install-recommends chromium' "
                    "(make test does it as root)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")

    with playwright.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except playwright.Error as e:  # installed but cannot start (a library missing, say)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            unavailable(f"{CHROMIUM} cannot start ({first[:160]}); reinstall it with apt-get")
        yield b
        b.close()
