"""Screenshot of the page after drawing a 7, for the documentation (docs/images/web.png).

Serves RUN_DIR on a free loopback port, draws with Chromium through Playwright and saves
the picture: python scripts/web_screenshot.py RUN_DIR [OUT.png] [--width 1000] [--explain]
(--explain: with "What the network sees" open; --height: the window's, the shot is the whole
page).
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import expect, sync_playwright

from digitnet import atomic
from digitnet.web.app import Settings, create_app

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SEVEN = [(0.27, 0.22), (0.72, 0.22), (0.46, 0.82)]


def serve(run_dir: Path) -> tuple[uvicorn.Server, str]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(run_dir=run_dir)), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}/"


def shoot(url: str, width: int, height: int = 720, explain: bool = False) -> bytes:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1,
                                has_touch=width < 500)
        page.goto(url)
        box = page.locator("#pad").bounding_box()
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in SEVEN]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=20)
        page.mouse.up()
        expect(page.locator("#result")).to_have_attribute("aria-busy", "false", timeout=15_000)
        if explain:
            page.get_by_text("What the network sees").click()
            expect(page.locator("#explain-body")).to_be_visible(timeout=30_000)
            expect(page.locator("#explain")).to_have_attribute("aria-busy", "false", timeout=30_000)
        page.wait_for_timeout(500)  # let the bars finish their transition
        data = page.screenshot(full_page=True)
        browser.close()
        return data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("out", type=Path, nargs="?", default=Path("docs/images/web.png"))
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--explain", action="store_true", help='with "What the network sees" open')
    args = p.parse_args()
    server, url = serve(args.run_dir)
    try:
        atomic.write_bytes(args.out, shoot(url, args.width, args.height, args.explain))
    finally:
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
