"""What the network sees, on the device and on the server: the page's explain.js with the
bundled reader's ONNX files in onnxruntime-web gives the same explanation as /api/explain for a
fixed drawing, and the page draws the same picture either way (test_on_device.py opens it on
the static site, offline)."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from web_helpers import draw, live_server, open_page, settled

from digitnet.inference import bundled
from digitnet.inference.explain import explain
from digitnet.runs import calibration
from digitnet.vision import imaging
from digitnet.web import browser_runtime, service
from digitnet.web.app import Settings, create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEVEN = [[(0.25, 0.22), (0.72, 0.22), (0.45, 0.82)]]
# In the page: the fixed drawing painted by the pages' own code, read and explained by
# reader/device.js as the page does it; then the same digit explained as an unsure answer
# ("7 or <runner-up>?"), so that the runner-up's map is compared too.
EXPLAIN = """async (strokes) => {
  const { openReader } = await import("/static/reader/device.js");
  const { paint } = await import("/static/reader/ink.js");
  const reader = await openReader("/ondevice/");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 280;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  paint(ctx, strokes.map((stroke) => ({ stroke })));
  const answer = await reader.read(ctx.getImageData(0, 0, 280, 280).data, 280, 280, true);
  const p = answer.probabilities;
  const runnerUp = [...p.keys()].filter((c) => c < 10 && c !== answer.digit).sort((a, b) => p[b] - p[a])[0];
  const text = `${answer.digit} or ${runnerUp}?`;
  const unsure = { ...answer, verdict: "unsure", text, runner_up: runnerUp };
  return {
    png: canvas.toDataURL("image/png").split(",")[1],
    sure: await reader.explain(answer),
    unsure: await reader.explain(unsure),
  };
}"""
# The pixels of each picture in the disclosure: its saliency maps and feature maps.
PICTURES = """() => [...document.querySelectorAll("#explain canvas")].map((c) =>
  Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data))"""


@pytest.fixture(scope="module")
def reader_url(missing_component):
    if browser_runtime.cached() is None:
        missing_component(browser_runtime.missing())
    with live_server(create_app(Settings(run_dir=bundled.reader_dir()))) as url:
        yield url


def restored(block: dict) -> np.ndarray:
    return np.array(block["values"]) * block["scale"] / 255


def assert_same(device: dict, server: dict) -> None:
    """The same explanation, up to the runtimes' float32 rounding and one step of 255."""
    assert device["image"] == server["image"]
    assert device["answer"]["text"] == server["answer"]["text"]
    assert device["method"] == server["method"]
    assert [s["class"] for s in device["saliency"]] == [s["class"] for s in server["saliency"]]
    for got, expected in zip(device["saliency"], server["saliency"], strict=True):
        assert got["scale"] == pytest.approx(expected["scale"], rel=1e-3)
        assert got["total"] == pytest.approx(expected["total"], abs=1e-3)
        assert np.abs(np.array(got["values"]) - np.array(expected["values"])).max() <= 1
    fm_device, fm_server = device["feature_maps"], server["feature_maps"]
    assert {k: v for k, v in fm_device.items() if k not in ("scale", "values")} == \
        {k: v for k, v in fm_server.items() if k not in ("scale", "values")}
    assert fm_device["scale"] == pytest.approx(fm_server["scale"], rel=1e-4)
    assert np.abs(np.array(fm_device["values"]) - np.array(fm_server["values"])).max() <= 1


def test_the_device_sees_what_the_server_sees(browser, reader_url, capsys):
    with open_page(browser, reader_url) as page:
        seen = page.evaluate(EXPLAIN, [[(x * 280, y * 280) for x, y in stroke] for stroke in SEVEN])
    data = base64.b64decode(seen["png"])
    served = service.load_model(bundled.reader_dir(), "auto")
    server = service.explain_image(data, "drawing.png", served.predictor)
    assert server["answer"]["text"] == "7"
    assert_same(seen["sure"], server)

    # the runner-up's map: the same digit with the verdict that names both
    predictor = served.predictor
    x = imaging.digit_from_bytes(data, "drawing.png").image28
    unsure = explain(predictor.model, x, predictor.classes, calibration.Verdict(reject=1.0, close=0.0),
                     probabilities=predictor.probabilities).to_dict()
    assert unsure["saliency"][1]["class"] == seen["unsure"]["saliency"][1]["class"]
    assert_same(seen["unsure"], unsure)
    with capsys.disabled():
        diff = np.abs(restored(seen["sure"]["saliency"][0]) - restored(server["saliency"][0])).max()
        print(f"\nexplanation of a drawn 7 on the device and on the server: largest difference of a "
              f"pixel's push {diff:.2e} (scale {server['saliency'][0]['scale']:.2f})")


def test_the_page_draws_the_same_picture_from_either(browser, reader_url):
    """Opened after a server's answer, the disclosure asks /api/explain; with the switch on this
    device it computes the same itself, asks the server nothing, and draws the same pixels."""
    with open_page(browser, reader_url) as page:
        asked = []
        page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/api/explain") else None)
        draw(page, SEVEN)
        expect = settled(page)
        assert not asked  # nothing is explained until it is opened
        page.get_by_text("What the network sees").click()
        expect(page.locator("#explain-body")).to_be_visible(timeout=15_000)
        expect(page.locator("#explain")).to_have_attribute("aria-busy", "false")
        assert len(asked) == 1
        on_server = page.evaluate(PICTURES)
        label = page.locator("#saliency canvas").first.get_attribute("aria-label")
        assert label.startswith("Where the network saw 7: red pixels spoke for it")
        expect(page.locator("#maps-caption")).to_contain_text("16 of its 24 feature maps")

        page.get_by_role("radio", name="On this device").check()
        expect(page.locator("#timing")).to_contain_text("Read on this device", timeout=60_000)
        expect(page.locator("#explain")).to_have_attribute("aria-busy", "false", timeout=30_000)
        on_device = page.evaluate(PICTURES)
        assert len(asked) == 1
        assert len(on_device) == len(on_server) == 1 + 16
        worst = max(int(np.abs(np.array(a) - np.array(b)).max())
                    for a, b in zip(on_device, on_server, strict=True))
        assert worst <= 3  # colour levels: one step of 255 in the push or the maps
