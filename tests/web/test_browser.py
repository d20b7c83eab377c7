"""The page in a real browser: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

import pytest
from web_helpers import draw, live_server, number_on_paper, on_paper, open_page, png, settled

from digitnet.inference import bundled
from digitnet.web.app import Settings, create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server_url(trained_run):
    with live_server(create_app(Settings(run_dir=trained_run))) as url:
        yield url


@pytest.fixture(scope="module")
def reader_url():
    with live_server(create_app(Settings(run_dir=bundled.reader_dir()))) as url:
        yield url


@pytest.fixture
def page(browser, server_url):
    with open_page(browser, server_url) as page:
        yield page


SEVEN = [[(0.25, 0.22), (0.72, 0.22), (0.45, 0.82)]]
ONE = [[(0.5, 0.15), (0.5, 0.85)]]


def test_a_drawn_digit_is_read_and_undo_clears_it(page):
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#status")).to_have_text("It is a 7.")
    expect(page.locator("#digit")).to_have_text("7")
    assert page.locator("#seen").get_attribute("src").startswith("data:image/png;base64,")
    assert page.locator("#bars li.best").inner_text().startswith("7")

    page.get_by_role("button", name="Undo").click()
    expect(page.locator("#status")).to_have_text("Draw a digit to begin.")
    draw(page, ONE)
    settled(page)
    expect(page.locator("#digit")).to_have_text("1")


def test_an_uploaded_photo_is_read(page, mnist, tmp_path):
    path = tmp_path / "digit.png"
    path.write_bytes(png(on_paper(mnist.x_test[0], size=90, at=(150, 40))))  # a 7, off centre
    page.set_input_files("#file", path)
    expect = settled(page)
    expect(page.locator("#digit")).to_have_text(str(mnist.y_test[0]))


def test_number_mode_reads_several_digits(page, mnist, tmp_path):
    page.get_by_role("radio", name="A number").check()
    path = tmp_path / "number.png"
    path.write_bytes(png(number_on_paper([mnist.x_test[i] for i in (0, 1, 2)])))
    page.set_input_files("#file", path)
    expect = settled(page)
    expect(page.locator("#number")).to_have_text("".join(str(mnist.y_test[i]) for i in (0, 1, 2)))
    expect(page.locator("#boxes span")).to_have_count(3)


def test_a_file_that_is_no_image_shows_the_servers_message(page, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    page.set_input_files("#file", path)
    expect = settled(page)
    expect(page.locator("#status")).to_contain_text("not an image")


def test_phone_width_fits_and_controls_are_labelled(browser, server_url):
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    page = context.new_page()
    page.goto(server_url)
    for name in ("Undo", "Clear", "Upload an image…"):
        assert page.get_by_role("button", name=name).count() == 1
    assert page.get_by_role("radio", name="One digit").is_checked()
    assert page.get_by_role("img", name="Drawing area").count() == 1
    box = page.locator("#pad").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 360
    page.keyboard.press("Tab")
    assert page.locator(":focus").count() == 1  # something takes the keyboard focus
    context.close()


SCRIBBLE = [[(0.2, 0.3), (0.8, 0.35), (0.25, 0.5), (0.75, 0.55), (0.3, 0.75), (0.7, 0.7), (0.5, 0.2)],
            [(0.15, 0.85), (0.85, 0.15)]]


def test_on_a_phone_the_verdict_shows_under_the_canvas(browser, reader_url):
    """With the bundled reader: a scribble is "not a digit", a 7 is a 7 but never "100%", and
    on a phone the verdict sits right under the canvas, in view without scrolling."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    page = context.new_page()
    page.goto(reader_url)
    draw(page, SCRIBBLE)
    expect = settled(page)
    quick = page.locator("#quick")
    expect(quick).to_contain_text("not a digit")
    box = quick.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 740, "the verdict is in view"
    expect(page.locator("#bars li")).to_have_count(11)  # the reader's 11 classes
    page.get_by_role("button", name="Clear").click()
    draw(page, SEVEN)
    settled(page)
    expect(quick).to_contain_text("7")
    assert "100" not in page.locator("#confidence").inner_text()
    context.close()
