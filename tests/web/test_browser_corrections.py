"""The Right / Wrong buttons in a real browser: by mouse, by keyboard, at phone width."""

from __future__ import annotations

import pytest
from test_browser import SEVEN
from web_helpers import draw, live_server, open_page, settled

from digitnet.corrections import store
from digitnet.web.app import Settings, create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def collecting(trained_run, tmp_path_factory):
    """(url, database) of a live server that keeps corrections."""
    settings = Settings(run_dir=trained_run, store=tmp_path_factory.mktemp("store"))
    with live_server(create_app(settings)) as url:
        yield url, settings.corrections_db


def test_right_by_mouse_and_wrong_by_keyboard(browser, collecting):
    url, db = collecting
    with open_page(browser, url) as page:
        right_by_mouse_and_wrong_by_keyboard(page, db)


def right_by_mouse_and_wrong_by_keyboard(page, db):
    draw(page, SEVEN)
    expect = settled(page)
    expect(page.locator("#feedback")).to_be_visible()
    page.get_by_role("button", name="Right").click()
    expect(page.locator("#feedback-status")).to_have_text("Thanks: kept as a right answer.")
    assert store.summaries(db)[0].label == "7"

    draw(page, [[(0.5, 0.1), (0.5, 0.9)]])  # a longer stroke: a new answer, new buttons
    settled(page)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    page.get_by_label("Wrong, it is").focus()
    page.keyboard.press("Escape")  # keys in the form leave the drawing alone
    expect(page.locator("#placeholder")).to_be_hidden()
    page.get_by_label("Wrong, it is").select_option("not a digit")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#feedback-status")).to_have_text("Thanks: kept as not a digit.")
    assert [r.label for r in store.summaries(db)[:2]] == ["not a digit", "7"]


def test_the_buttons_fit_a_phone(browser, collecting):
    url, _ = collecting
    context = browser.new_context(viewport={"width": 360, "height": 740}, has_touch=True)
    page = context.new_page()
    page.goto(url)
    draw(page, SEVEN)
    settled(page)
    for control in (page.get_by_role("button", name="Right"), page.get_by_label("Wrong, it is"),
                    page.get_by_role("button", name="Send")):
        box = control.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["height"] >= 44
    context.close()
