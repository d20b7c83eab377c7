"""The page and the static site for everyone: axe-core finds no serious or critical violation as
they load, after each kind of answer and with "What the network sees" open, at desktop and phone
width; every control is reached and used by keyboard, drawing included, with its focus in view;
the verdict is announced and the drawing has a text alternative saying what was read."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading

import axe_core
import pytest
from web_helpers import draw, live_server, number_on_paper, on_paper, png, settled

from digitnet.inference import bundled
from digitnet.runs.run import Run
from digitnet.web import browser_runtime
from digitnet.web.app import Settings, create_app
from digitnet.web.site import export_site

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 360, "height": 740}}
BLOCKING = {"serious", "critical"}  # axe's impacts that fail; "moderate" and "minor" are reported
SEVEN = [[(0.25, 0.22), (0.72, 0.22), (0.45, 0.82)]]
SCRIBBLE = [[(0.2, 0.3), (0.8, 0.35), (0.25, 0.5), (0.75, 0.55), (0.3, 0.75), (0.7, 0.7), (0.5, 0.2)],
            [(0.15, 0.85), (0.85, 0.15)]]
# Every violation of the page as it stands: id, impact and where (the first few nodes).
AXE_RUN = """async () => (await axe.run(document)).violations.map((v) => ({
  id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
}))"""


@pytest.fixture(scope="module")
def axe(missing_component) -> str:
    script = axe_core.cached()
    if script is None:
        missing_component(axe_core.missing())
    return script.read_text()


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    """The bundled reader as calibrated, and a copy whose "close" threshold is 0, so that each
    digit it reads is an unsure answer ("7 or 1?")."""
    base = tmp_path_factory.mktemp("readers")
    sure, unsure = base / "reader", base / "unsure"
    shutil.copytree(bundled.reader_dir(), sure)
    shutil.copytree(sure, unsure)
    metrics = json.loads((unsure / "metrics.json").read_text())
    metrics["calibration"]["close"] = 0.0
    (unsure / "metrics.json").write_text(json.dumps(metrics))
    return sure, unsure


@pytest.fixture(scope="module")
def served(readers, tmp_path_factory):
    """The page served with each reader, collecting corrections (Right / Wrong under answers)."""
    sure, unsure = readers
    store = tmp_path_factory.mktemp("store")
    with live_server(create_app(Settings(run_dir=sure, store=store / "sure"))) as sure_url, \
            live_server(create_app(Settings(run_dir=unsure, store=store / "unsure"))) as unsure_url:
        yield sure_url, unsure_url


@pytest.fixture(scope="module")
def sites(readers, mnist, tmp_path_factory, missing_component):
    """The static site of the bundled reader, and the same site with the unsure verdict, on a
    plain static file server: (url of one, url of the other)."""
    if browser_runtime.cached() is None:
        missing_component(browser_runtime.missing())
    root = tmp_path_factory.mktemp("sites")
    export_site(Run.open(readers[0]), root / "sure", mnist.x_test[:500], mnist.y_test[:500])
    shutil.copytree(root / "sure", root / "unsure")
    info = json.loads((root / "unsure" / "model.json").read_text())
    info["calibration"]["close"] = 0.0
    (root / "unsure" / "model.json").write_text(json.dumps(info))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    yield f"{base}sure/", f"{base}unsure/"
    server.shutdown()
    thread.join(timeout=10)


def new_page(browser, width: str):
    """A page at one of WIDTHS, without motion (the bars' transition would be measured midway);
    the site's strict CSP would block the injected axe-core, so pages bypass it."""
    context = browser.new_context(viewport=WIDTHS[width], has_touch=width == "phone",
                                  reduced_motion="reduce", bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def violations(page, axe: str) -> list[dict]:
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.add_script_tag(content=axe)
    return page.evaluate(AXE_RUN)


def audit(page, axe: str, state: str, found: dict, widths: tuple[str, ...] = ()) -> None:
    """axe-core on the page as it is now; the serious and critical violations under ``state``,
    and every violation printed (the moderate and minor ones too). With ``widths``, the page
    is audited at each of them in turn (the layout changes with the width alone), ending at
    the first."""
    for width in widths:
        page.set_viewport_size(WIDTHS[width])
        audit(page, axe, f"{state} ({width})", found)
    if widths:
        page.set_viewport_size(WIDTHS[widths[0]])
        return
    all_found = violations(page, axe)
    for v in all_found:
        print(f"{state}: {v['impact']} {v['id']} ({v['help']}) at {'; '.join(v['nodes'])}")
    blocking = [f"{v['impact']} {v['id']}: {v['help']} at {'; '.join(v['nodes'])}"
                for v in all_found if v["impact"] in BLOCKING]
    if blocking:
        found[state] = blocking


def open_explanation(page, maps: int = 16):
    """Open "What the network sees" under the answer on show and wait for its pictures."""
    from playwright.sync_api import expect

    page.get_by_text("What the network sees").click()
    expect(page.locator("#explain-body")).to_be_visible(timeout=60_000)
    expect(page.locator("#explain")).to_have_attribute("aria-busy", "false", timeout=60_000)
    expect(page.locator("#maps canvas")).to_have_count(maps)


def audit_a_digit_and_a_scribble(page, axe, found: dict[str, list[str]], shown: tuple[str, ...] = (),
                                 widths: tuple[str, ...] = ()):
    """Draw a 7, audit the answer (once the ``shown`` selectors are visible) and the answer with
    "What the network sees" open, clear, draw a scribble, audit again (at each of ``widths``);
    returns the page's ``expect``."""
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    for selector in shown:
        expect(page.locator(selector)).to_be_visible()
    audit(page, axe, "a digit", found, widths)
    open_explanation(page)
    audit(page, axe, "the explanation open", found, widths)
    page.get_by_role("button", name="Clear").click()
    # With "What the network sees" open, each move of the pen is read and explained anew (the
    # static site does both on the page's own thread): the scribble's lines are drawn in one
    # move each, not twenty, the same straight lines in a seventh of the work.
    draw(page, SCRIBBLE, steps=1)
    settled(page)
    expect(page.locator("#status")).to_have_text("That does not look like a digit.")
    audit(page, axe, "not a digit", found, widths)
    return expect


def audit_an_unsure_answer(page, axe, found: dict[str, list[str]], widths: tuple[str, ...] = ()) -> None:
    """On a page whose reader says "a or b?" for every digit: draw a 7 and audit the answer,
    then with the explanation of both open (at each of ``widths``)."""
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#status")).to_contain_text("Unsure: 7 or")
    audit(page, axe, "unsure", found, widths)
    open_explanation(page)
    expect(page.locator("#saliency canvas")).to_have_count(2)
    audit(page, axe, "the explanation of an unsure answer open", found, widths)


def test_the_served_page_has_no_serious_violation(browser, served, axe, mnist, tmp_path):
    """Each state audited at one width, then the other (the layout changes with the width
    alone), so that the page is loaded and each answer asked for once, not once per width."""
    sure_url, unsure_url = served
    widths = tuple(WIDTHS)
    context, page, errors = new_page(browser, widths[0])
    found: dict[str, list[str]] = {}
    page.goto(sure_url)
    page.wait_for_load_state("networkidle")
    audit(page, axe, "as loaded", found, widths)

    # the corrections form (Right / Wrong) is part of a digit's answer: audited with it
    expect = audit_a_digit_and_a_scribble(page, axe, found, shown=("#right",), widths=widths)

    page.get_by_role("button", name="Clear").click()
    page.get_by_role("radio", name="A number").check()
    path = tmp_path / "number.png"
    path.write_bytes(png(number_on_paper([mnist.x_test[i] for i in (0, 1, 2)])))
    page.set_input_files("#file", path)
    settled(page)
    expect(page.locator("#status")).to_contain_text("It reads")
    audit(page, axe, "a number", found, widths)

    page.goto(unsure_url)
    audit_an_unsure_answer(page, axe, found, widths)
    context.close()
    assert not errors, errors
    assert not found, json.dumps(found, indent=1)


def loaded(page):
    """Wait until the site's reader is loaded: the runtime compiles 14 MB of WebAssembly, which
    takes a while on a busy machine."""
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text("Draw a digit to begin.", timeout=120_000)
    return settled(page)


def test_the_static_site_has_no_serious_violation(browser, sites, axe):
    """As the served page, at both widths; each state is audited at one width, then the other,
    so the site's 14 MB runtime is compiled once per site rather than once per width."""
    sure_url, unsure_url = sites
    widths = tuple(WIDTHS)
    context, page, errors = new_page(browser, widths[0])
    found: dict[str, list[str]] = {}
    page.goto(sure_url)
    loaded(page)
    audit(page, axe, "as loaded", found, widths)

    audit_a_digit_and_a_scribble(page, axe, found, widths=widths)

    page.goto(unsure_url)
    loaded(page)
    audit_an_unsure_answer(page, axe, found, widths)
    context.close()
    assert not errors, errors
    assert not found, json.dumps(found, indent=1)


# The element that has the keyboard focus, as a short name, and whether its focus shows: an
# outline on it (or, for the hidden radio inputs of a switch, on their label).
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const name = el.type === "radio" ? `${el.name}:${el.value}` : el.id || el.tagName.toLowerCase();
  const ring = getComputedStyle(el.type === "radio" ? el.closest("label") : el);
  return { name, ring: ring.outlineStyle !== "none" && parseFloat(ring.outlineWidth) >= 2 };
}"""


def tab_through(page, limit: int = 20) -> list[dict]:
    """The elements Tab reaches from the top of the page, in order, up to the last one."""
    page.click("h1")  # where the next Tab starts from
    reached = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = page.evaluate(FOCUSED)
        if now is None or (reached and now["name"] == reached[0]["name"]):
            break
        reached.append(now)
    return reached


def test_every_control_works_by_keyboard(browser, served, mnist, tmp_path):
    """Tab reaches each control in reading order with a visible focus ring; a photo is chosen,
    read, confirmed and cleared with keys only; Enter on the drawing reads it again."""
    context, page, errors = new_page(browser, "desktop")
    page.goto(served[0])
    page.wait_for_load_state("networkidle")
    reached = tab_through(page)
    assert [r["name"] for r in reached] == ["mode:digit", "pad", "upload", "where:server", "a"]
    assert all(r["ring"] for r in reached), reached

    # A photo, with keys alone: Enter on "Upload an image…" opens the file chooser (the hidden
    # file field is clicked); the file is then given to that field, as the chooser would.
    page.evaluate("document.getElementById('file').addEventListener('click', () => { window.chose = true; })")
    page.focus("#upload")
    page.keyboard.press("Enter")
    assert page.evaluate("window.chose === true")
    path = tmp_path / "digit.png"
    path.write_bytes(png(on_paper(mnist.x_test[0], size=90, at=(150, 40))))  # a 7
    page.set_input_files("#file", path)
    expect = settled(page)
    expect(page.locator("#status")).to_have_text(f"It is a {mnist.y_test[0]}.")

    # The answer's controls join the order after the switch, "What the network sees" last;
    # Space on Right sends it, Enter on the disclosure opens it.
    reached = tab_through(page, limit=30)
    names = [r["name"] for r in reached]
    assert names[:7] == ["mode:digit", "pad", "undo", "clear", "upload", "where:server", "right"], names
    assert names[-2:] == ["summary", "a"] and {"label-digit", "send"} <= set(names), names
    assert all(r["ring"] for r in reached), reached
    page.focus("#right")
    page.keyboard.press("Space")
    expect(page.locator("#feedback-status")).to_have_text("Thanks: kept as a right answer.")
    page.focus("#explain summary")
    page.keyboard.press("Enter")
    expect(page.locator("#saliency canvas")).to_have_count(1, timeout=30_000)

    # On the drawing: Escape clears it; after drawing, Enter asks for the answer again.
    page.focus("#pad")
    page.keyboard.press("Escape")
    expect(page.locator("#status")).to_have_text("Draw a digit to begin.")
    expect(page.locator("#clear")).to_be_disabled()
    draw(page, SEVEN)
    settled(page)
    asked = []
    page.on("request", lambda r: asked.append(r.url) if r.url.endswith("/api/predict") else None)
    page.focus("#pad")
    page.keyboard.press("Enter")
    settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    assert len(asked) == 1
    context.close()
    assert not errors, errors


def test_the_verdict_is_announced_and_the_drawing_says_what_was_read(browser, served):
    context, page, errors = new_page(browser, "desktop")
    page.goto(served[0])
    pad, status = page.locator("#pad"), page.locator("#status")
    assert pad.get_attribute("role") == "img"
    assert pad.get_attribute("aria-label") == "Drawing area, empty"
    assert status.get_attribute("aria-live") == "polite"

    draw(page, SEVEN)
    expect = settled(page)
    expect(status).to_have_text("It is a 7.")
    assert pad.get_attribute("aria-label") == "Drawing area, read as 7"
    # each bar is a meter named by its class, its value the percentage shown
    meter = page.get_by_role("meter", name="7", exact=True)
    assert float(meter.get_attribute("aria-valuenow")) > 50
    assert meter.get_attribute("aria-valuetext").endswith("%")

    page.get_by_role("button", name="Clear").click()
    draw(page, SCRIBBLE)
    settled(page)
    expect(status).to_have_text("That does not look like a digit.")
    assert pad.get_attribute("aria-label") == "Drawing area, read as not a digit"
    page.keyboard.press("Escape")
    expect(status).to_have_text("Draw a digit to begin.")
    assert pad.get_attribute("aria-label") == "Drawing area, empty"
    assert page.get_by_role("meter", name="7", exact=True).get_attribute("aria-valuetext") == "no answer yet"
    context.close()
    assert not errors, errors


# A 7 drawn with keys alone: the pen starts in the middle, each arrow moves it a 28th of the
# canvas; to the top left, down, right along the top, diagonally down-left, down, up.
SEVEN_BY_KEYS = ["ArrowLeft"] * 7 + ["ArrowUp"] * 8 + [" "] + ["ArrowRight"] * 14 + ["End"] * 10 + \
    ["ArrowDown"] * 7 + [" "]


@pytest.mark.parametrize("where", ["page", "site"])
def test_a_digit_drawn_with_keys_alone_is_read(browser, served, sites, where):
    """Arrow keys move the pen, Space puts it down and lifts it: the drawing is read, the
    verdict announced, and the pen's ring shows where it is."""
    context, page, errors = new_page(browser, "desktop")
    page.goto(served[0] if where == "page" else sites[0])
    expect = loaded(page) if where == "site" else settled(page)
    hint = page.locator("#" + page.locator("#pad").get_attribute("aria-describedby"))
    assert "arrows move a pen" in hint.text_content() and "Space puts it down" in hint.text_content()
    page.focus("#pad")
    for key in SEVEN_BY_KEYS[:16]:  # to the start of the stroke, and the pen down
        page.keyboard.press(key)
    expect(page.locator("#pen")).to_be_visible()
    expect(page.locator("#pen")).to_have_class("pen down")
    for key in SEVEN_BY_KEYS[16:]:
        page.keyboard.press(key)
    settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    assert page.locator("#pad").get_attribute("aria-label") == "Drawing area, read as 7"
    expect(page.locator("#pen")).to_have_class("pen")
    page.keyboard.press("Control+z")  # the stroke is undone, as one drawn with a mouse
    expect(page.locator("#status")).to_have_text("Draw a digit to begin.")
    context.close()
    assert not errors, errors
