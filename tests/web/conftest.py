"""What the browser tests share: one Chromium for the whole session (without it they skip,
or fail under CI=true)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="session")
def browser(missing_component):
    if not CHROMIUM.exists():
        missing_component(f"{CHROMIUM} not installed; 'apt-get install --no-install-recommends "
                          "chromium' (make test does it as root)")
    try:
        import playwright.sync_api as playwright
    except ImportError:
        missing_component("playwright not installed; 'make .venv/.installed-test' installs the test extras")

    # An answer read and explained by a server that shares two busy cores with the suite can
    # take several seconds: every assertion waits as long as ``settled`` does, not playwright's
    # 5 s (a real failure is only reported later).
    playwright.expect.set_options(timeout=15_000)
    with playwright.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        except playwright.Error as e:  # installed but cannot start (a library missing, say)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            missing_component(f"{CHROMIUM} cannot start ({first[:160]}); reinstall it with apt-get")
        yield b
        b.close()
