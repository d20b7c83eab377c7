"""Reading on the device, in Chromium: the page's JavaScript reader (reader/device.js:
preprocessing, onnxruntime-web, verdict) against the server on the same drawings and photos,
the served page's switch, and the static site of ``digitnet export --web`` on a plain static
file server."""

from __future__ import annotations

import base64
import functools
import http.server
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from web_helpers import (
    DIGIT_STROKES,
    draw,
    drawn_digit,
    live_server,
    on_paper,
    open_page,
    png,
    scribble,
    settled,
)

from digitnet.inference.predictor import Predictor
from digitnet.runs import calibration
from digitnet.runs.run import Run
from digitnet.vision import render
from digitnet.vision.imaging import ImageError
from digitnet.web import browser_runtime, service
from digitnet.web.app import Settings, create_app
from digitnet.web.site import export_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DRAWINGS = 200  # 10% of them scribbles
PHOTOS = 100  # half PNG, half JPEG
SEVEN = [[(0.25, 0.22), (0.72, 0.22), (0.45, 0.82)]]

# In the page: the drawings painted by the pages' own code (reader/ink.js), as PNG for the server.
PAINT = """async (drawings) => {
  const { paint } = await import("/static/reader/ink.js");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 280;
  const ctx = canvas.getContext("2d");
  return drawings.map((strokes) => {
    paint(ctx, strokes.map((stroke) => ({ stroke })));
    return canvas.toDataURL("image/png").split(",")[1];
  });
}"""
# ... and each read by reader/device.js as the pages do: a drawing from the canvas, a photo from
# its file. The verdict rows check verdict.js alone.
READ_ALL = """async ({drawings, photos, rows}) => {
  const { decodeFile, openReader } = await import("/static/reader/device.js");
  const { paint } = await import("/static/reader/ink.js");
  const { answer, verdictFrom } = await import("/static/reader/verdict.js");
  const reader = await openReader("/ondevice/");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 280;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const read = async (pixels, drawing) => {
    try {
      const a = await reader.read(pixels.data, pixels.width, pixels.height, drawing);
      return { text: a.text, ms: a.ms };
    } catch (e) {
      return { text: `error: ${e.kind || e.message}` };
    }
  };
  const out = { drawings: [], photos: [], verdicts: [] };
  for (const strokes of drawings) {
    paint(ctx, strokes.map((stroke) => ({ stroke })));
    out.drawings.push(await read(ctx.getImageData(0, 0, 280, 280), true));
  }
  for (const data of photos) {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    out.photos.push(await read(await decodeFile(new Blob([bytes])), false));
  }
  for (const { probabilities, record, names } of rows) {
    out.verdicts.push(answer(probabilities, verdictFrom(record), names));
  }
  return out;
}"""


@pytest.fixture(scope="module")
def runtime():
    if browser_runtime.cached() is None:
        pytest.skip(browser_runtime.missing())
    return browser_runtime.cached()


@pytest.fixture(scope="module")
def device_url(runtime, exported_run):
    """The server of a run with a checked model.onnx: it offers reading on the device."""
    with live_server(create_app(Settings(run_dir=exported_run[0]))) as url:
        yield url


@pytest.fixture(scope="module")
def device_page(browser, device_url):
    with open_page(browser, device_url) as page:
        yield page


def server_text(data: bytes, predictor: Predictor) -> str:
    """What /api/predict answers for these bytes, as the page shows it."""
    try:
        return service.predict_image(data, "image", predictor).text
    except ImageError as e:
        return f"error: {e.kind}"


def kind(text: str) -> str:
    """What sort of answer the page shows: a digit, unsure, not a digit, or refused."""
    if text.startswith("error: "):
        return "refused"
    return "not a digit" if text == "not a digit" else "unsure" if " or " in text else "digit"


def photo_files(mnist, count: int) -> list[bytes]:
    rng = np.random.default_rng(16)
    files = []
    for i in range(count):
        photo, _ = render.render_photo(mnist.x_test[i], rng)
        jpeg = [cv2.IMWRITE_JPEG_QUALITY, 90]
        ok, data = cv2.imencode(".png", photo) if i % 2 else cv2.imencode(".jpg", photo, jpeg)
        assert ok
        files.append(data.tobytes())
    return files


def verdict_rows() -> tuple[list[dict], list[dict]]:
    """Probability rows (10 and 11 classes) with recorded thresholds or none, and what
    calibration.answers says of each."""
    rng = np.random.default_rng(3)
    names10 = [str(d) for d in range(10)]
    names11 = [*names10, "not a digit"]
    rows, expected = [], []
    for names, record in ((names10, None), (names11, None),
                          (names11, {"temperature": 1.3, "reject": 0.41, "close": 0.22})):
        probs = rng.dirichlet(np.full(len(names), 0.3), 150).astype(np.float32)
        verdict = calibration.from_record(record)
        expected += [a.to_dict() for a in calibration.answers(probs, verdict, names)]
        rows += [{"probabilities": p.tolist(), "record": record, "names": names} for p in probs]
    return rows, expected


def test_on_device_answers_equal_the_servers(device_page, exported_run, mnist, capsys):
    rng = np.random.default_rng(0)
    drawings = [scribble(rng) if i % 10 == 9 else drawn_digit(i % len(DIGIT_STROKES), rng)
                for i in range(DRAWINGS)]
    photos = photo_files(mnist, PHOTOS)
    pngs = [base64.b64decode(p) for p in device_page.evaluate(PAINT, drawings)]
    rows, expected = verdict_rows()
    predictor = Predictor.from_run(exported_run[0])
    with ThreadPoolExecutor(1) as pool:  # the server's answers while the browser reads
        server = pool.map(lambda data: server_text(data, predictor), pngs + photos)
        seen = device_page.evaluate(READ_ALL, {
            "drawings": drawings, "photos": [base64.b64encode(p).decode() for p in photos], "rows": rows})
        server = list(server)
    same_drawings = [d["text"] == t for d, t in zip(seen["drawings"], server[:DRAWINGS], strict=True)]
    same_photos = [p["text"] == t for p, t in zip(seen["photos"], server[DRAWINGS:], strict=True)]
    drawings_ms = [d["ms"] for d in seen["drawings"] if "ms" in d]
    photos_ms = [p["ms"] for p in seen["photos"] if "ms" in p]
    kinds = Counter(kind(d["text"]) for d in seen["drawings"] + seen["photos"])
    with capsys.disabled():
        print(f"\non-device answers equal the server's: drawings {sum(same_drawings)}/{DRAWINGS} "
              f"({np.mean(same_drawings):.1%}), photos {sum(same_photos)}/{PHOTOS} "
              f"({np.mean(same_photos):.1%}); "
              f"median time per answer in Chromium: drawing {statistics.median(drawings_ms):.1f} ms, "
              f"photo {statistics.median(photos_ms):.1f} ms; answers: "
              + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    assert np.mean(same_drawings) >= 0.995
    assert np.mean(same_photos) >= 0.98
    assert seen["verdicts"] == expected  # verdict.js is calibration.answers


def test_the_switch_reads_on_this_device_and_says_how_long(device_page):
    page = device_page
    page.get_by_role("radio", name="On this device").check()
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    expect(page.locator("#timing")).to_contain_text("Read on this device in")
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    page.get_by_role("radio", name="On the server").check()
    settled(page)
    expect(page.locator("#timing")).to_contain_text("Read on the server in")
    expect(page.locator("#digit")).to_have_text("7")


@pytest.fixture(scope="module")
def site(runtime, exported_run, mnist, tmp_path_factory):
    """The static site of the exported run, served by Python's static file server."""
    dest = tmp_path_factory.mktemp("web") / "site"
    written = export_site(Run.open(exported_run[0]), dest, mnist.x_test, mnist.y_test)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=written.path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield written, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join(timeout=10)


def test_the_static_site_reads_drawings_and_photos_offline(browser, site, mnist, tmp_path, capsys):
    written, url = site
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    start = time.monotonic()
    page.goto(url)
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    first = time.monotonic() - start

    context.set_offline(True)  # everything it needs is loaded: no server from here on
    path = tmp_path / "digit.png"
    path.write_bytes(png(on_paper(mnist.x_test[1], size=90, at=(150, 40))))
    page.set_input_files("#file", path)
    settled(page)
    expect(page.locator("#digit")).to_have_text(str(mnist.y_test[1]))
    expect(page.locator("#timing")).to_contain_text("Read on this device in")
    # what the network sees, computed here too: the pixels' push and the first layer's maps
    page.get_by_text("What the network sees").click()
    expect(page.locator("#explain-body")).to_be_visible(timeout=30_000)
    expect(page.locator("#saliency canvas")).to_have_count(1)
    expect(page.locator("#maps canvas")).to_have_count(16)
    expect(page.locator("#maps-caption")).to_contain_text("16 of its 32 feature maps")
    context.close()
    assert not errors, errors
    with capsys.disabled():
        print(f"\nstatic site: {written.bytes / 1e6:.1f} MB in {written.files} files; first answer "
              f"{first:.2f} s after opening it")
