"""Digit images as people send them: MNIST test digits as dark ink on white paper, PNG-encoded."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import cv2
import numpy as np


def on_paper(digit28: np.ndarray, size: int = 120, canvas: tuple[int, int] = (300, 300),
             at: tuple[int, int] = (20, 30)) -> np.ndarray:
    """A white-on-black MNIST digit drawn dark-on-white, ``size`` px tall at ``at`` (x, y)."""
    paper = np.full(canvas, 255, np.uint8)  # (H, W)
    x, y = at
    paper[y : y + size, x : x + size] = ink(digit28, size)
    return paper


def ink(digit28: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size): the digit scaled up, dark on white."""
    return 255 - cv2.resize(digit28, (size, size), interpolation=cv2.INTER_CUBIC)


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def number_on_paper(digits28: list[np.ndarray], size: int = 80, gap: int = 30) -> np.ndarray:
    """Several digits side by side on white paper, ``gap`` px between their 28x28 fields
    (negative: the fields overlap, and digits that reach their field's edge touch)."""
    margin = 30
    width = 2 * margin + len(digits28) * size + (len(digits28) - 1) * gap
    paper = np.full((size + 2 * margin, width), 255, np.uint8)
    for i, d in enumerate(digits28):
        x = margin + i * (size + gap)
        field = paper[margin : margin + size, x : x + size]
        np.minimum(field, ink(d, size), out=field)  # dark ink over what is already written
    return paper


class UniformPredictor:
    """Ten equal probabilities for any batch: a model that costs nothing, so tests of the image
    path and the HTTP layer run in milliseconds and need no trained run."""

    backend = "uniform"

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 10), 0.1, np.float32)

    def answers(self, probabilities: np.ndarray) -> list:
        """The verdict a model without calibration gives (as ``Predictor.answers``)."""
        from digitnet.runs import calibration

        return calibration.answers(probabilities, calibration.Verdict(), [str(d) for d in range(10)])


def uniform_app(**settings):
    """The real application serving ``UniformPredictor`` (and the package's line reader, which
    is small and quick)."""
    from pathlib import Path

    from digitnet.runs.line_reading import LineReader
    from digitnet.web import service, site
    from digitnet.web.app import Settings, create_app
    from digitnet.web.schemas import ModelInfo

    info = ModelInfo(run="uniform", dataset="mnist", classes=[str(d) for d in range(10)],
                     architecture="uniform", parameters=None, test_accuracy=None, precision=None,
                     backend="uniform", line_reader="the package's")
    no_device = site.OnDevice({}, None, "a stand-in model")
    loaded = service.LoadedModel(UniformPredictor(), info, LineReader.load(),  # type: ignore[arg-type]
                                 no_device)
    return create_app(Settings(run_dir=Path("uniform"), **settings), loaded=loaded)


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """uvicorn serving ``app`` on 127.0.0.1, a free port, in a thread: yields its URL."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def open_page(browser, url: str) -> Iterator:
    """A desktop-sized page at ``url``; on leaving, no script error may have happened on it."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    try:
        yield page
    finally:
        context.close()
    assert not errors, errors


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 12) -> list:
    """Points of an elliptic arc, angles in turns (0 = right, 0.25 = down)."""
    t = np.linspace(start, end, n) * 2 * np.pi
    return list(zip(cx + rx * np.cos(t), cy + ry * np.sin(t), strict=True))


# Each digit as strokes in a unit box (x right, y down), the way people commonly write it.
DIGIT_STROKES = {
    0: [_arc(0.5, 0.5, 0.32, 0.48, -0.25, 0.75, 24)],
    1: [[(0.35, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    2: [_arc(0.5, 0.3, 0.3, 0.28, -0.45, 0.1) + [(0.1, 1.0), (0.9, 1.0)]],
    3: [_arc(0.48, 0.26, 0.3, 0.25, -0.4, 0.25) + _arc(0.48, 0.74, 0.34, 0.26, -0.25, 0.4)],
    4: [[(0.6, 0.0), (0.05, 0.68), (0.95, 0.68)], [(0.68, 0.3), (0.68, 1.0)]],
    5: [[(0.85, 0.0), (0.25, 0.0), (0.2, 0.45)] + _arc(0.48, 0.7, 0.35, 0.3, -0.4, 0.4)],
    6: [[(0.75, 0.0), (0.3, 0.4)] + _arc(0.5, 0.72, 0.3, 0.28, 0.55, 1.55, 18)],
    7: [[(0.1, 0.0), (0.9, 0.0), (0.4, 1.0)]],
    8: [_arc(0.5, 0.27, 0.25, 0.25, 0.25, 1.25, 16) + _arc(0.5, 0.75, 0.32, 0.25, -0.25, 0.75, 16)],
    9: [_arc(0.5, 0.3, 0.3, 0.28, 0.0, 1.0, 16) + [(0.8, 0.3), (0.72, 1.0)]],
}


def drawn_digit(digit: int, rng: np.random.Generator, side: int = 280) -> list[list[tuple[float, float]]]:
    """Strokes of ``digit`` as someone might draw it on a ``side`` px canvas: a random size,
    place, slant and rotation, and a shaky hand. Points are canvas pixels."""
    height = rng.uniform(0.35, 0.8) * side
    width = height * rng.uniform(0.45, 0.8)
    angle, slant = rng.uniform(-0.25, 0.25), rng.uniform(-0.3, 0.3)
    cx = rng.uniform(width / 2 + 10, side - width / 2 - 10)
    cy = rng.uniform(height / 2 + 10, side - height / 2 - 10)
    strokes = []
    for stroke in DIGIT_STROKES[digit]:
        points = np.array(stroke, np.float64) - 0.5
        points[:, 0] += slant * -points[:, 1]
        points = points * (width, height) + rng.normal(0, 0.012 * side, points.shape)
        c, s = np.cos(angle), np.sin(angle)
        points = points @ np.array([[c, s], [-s, c]]) + (cx, cy)
        strokes.append([(float(x), float(y)) for x, y in np.clip(points, 0, side - 1)])
    return strokes


def scribble(rng: np.random.Generator, side: int = 280) -> list[list[tuple[float, float]]]:
    """Something that is no digit: a few random strokes."""
    strokes = [rng.uniform(0.1 * side, 0.9 * side, (int(rng.integers(2, 7)), 2))
               for _ in range(int(rng.integers(1, 4)))]
    return [[(float(x), float(y)) for x, y in stroke] for stroke in strokes]


def draw(page, strokes: list[list[tuple[float, float]]], steps: int = 5) -> None:
    """Each stroke is a list of points as fractions of the drawing canvas's width and height;
    the pen passes ``steps`` moves along the straight line to each next point. The page joins
    the points it is given with straight lines, so a few moves draw the same ink as many, and
    each move is a round trip to the browser: 20 a segment made drawing a 7 take 2 s on two
    busy cores, and the browser tests 13% longer than 5."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        points = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for point in points[1:]:
            page.mouse.move(*point, steps=steps)
        page.mouse.up()


def settled(page):
    """Wait until the answer to the last change is on the page."""
    from playwright.sync_api import expect

    expect(page.locator("#result")).to_have_attribute("aria-busy", "false", timeout=15_000)
    return expect
