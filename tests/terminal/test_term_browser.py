"""``poslab-terminal --serve`` in a real browser: headless system Chromium, driven by keyboard.

Screenshots go to ``POSLAB_SCREENSHOTS_DIR`` when set (``make screenshots`` refreshes the
README's pictures in docs/img/), else to the test's temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Tab, chromium_or_skip, launch, served_terminals, wait_released

from terminal.serve_session import LOCK_FOLDER

MENU_HINT = "1-8 or ↑↓ Enter: choose"
FULL_PAN = "4111111111111111"
pytestmark = pytest.mark.long  # each drives Chromium for several seconds


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module (its start and Playwright's driver cost ~1 s of
    CPU each time); each test opens its own context, so no page, cookie or storage is shared.
    Skips (fails under ``POSLAB_REQUIRE_BROWSER``) without Chromium."""
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        shared = launch(pw, chromium)
        yield shared
        shared.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own pages and storage) on the module's Chromium."""
    fresh = browser.new_context()
    yield fresh
    fresh.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("POSLAB_SCREENSHOTS_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sale(tab: Tab, amount: str) -> str:
    tab.press("1")
    tab.wait_for("0-9 amount")
    tab.press(*amount, "Enter")
    tab.wait_for("S swipe  I insert")
    tab.press("i")
    return tab.wait_for("Enter: done")


def _partial_refund(tab: Tab, amount: str) -> str:
    tab.press("2")
    tab.wait_for("R: key in an RRN")
    tab.press("Enter")
    tab.wait_for("0-9 amount")
    tab.press("Delete", *amount, "Enter")
    tab.wait_for("1-5 or ↑↓ Enter: choose")
    tab.press("4")  # reason: return
    tab.wait_for("S swipe  I insert")
    tab.press("i")
    tab.wait_for("Type the supervisor password")
    tab.press(*"0000", "Enter")
    return tab.wait_for("Enter: done")


def test_browser_sale_and_partial_refund(tmp_path: Path, context: Any) -> None:
    """In a browser tab: a sale of 100.00 and a refund of 60.00 of it, keyed on the keyboard,
    are both approved on the page (PAN masked), by the tab's own terminal and data folder; the
    page fetched nothing from anywhere but the server."""
    shots = _shots(tmp_path)
    data = tmp_path / "data"
    with served_terminals(data) as served:
        page = context.new_page()
        page.set_viewport_size({"width": 1280, "height": 760})
        tab = Tab(page, served.url)
        assert "TID TERM0001" in tab.wait_for(MENU_HINT)

        sold = _sale(tab, "10000")
        assert "APPROVED" in sold and "100.00" in sold, sold
        assert "411111******1111" in sold and FULL_PAN not in sold
        page.screenshot(path=str(shots / "browser-sale.png"))
        tab.press("Enter")
        tab.wait_for(MENU_HINT)

        refunded = _partial_refund(tab, "6000")
        assert "APPROVED" in refunded and "60.00" in refunded, refunded
        assert "Remaining refundable: 40.00" in " ".join(refunded.split())
        assert FULL_PAN not in refunded
        tab.wait_for("  refund")  # the message pane has moved to the refund's request
        page.screenshot(path=str(shots / "browser-refund.png"))
        page.close()
    assert tab.elsewhere == []  # the page works on a classroom network without internet
    assert (data / "TERM0001" / "journal.json").is_file()
    assert not (data / "TERM0002").exists()


def test_browser_tabs_take_ids_from_the_pool(tmp_path: Path, context: Any) -> None:
    """Two tabs get the pool's two ids; a third is told the pool is exhausted; a closed tab's
    id goes to the next tab; stopping the server ends every tab's terminal."""
    data = tmp_path / "data"
    locks = data / LOCK_FOLDER
    with served_terminals(data, "--tid-pool", "LAB00001-LAB00002") as served:
        url = served.url
        first = Tab(context.new_page(), url)
        assert "TID LAB00001" in first.wait_for(MENU_HINT)
        second = Tab(context.new_page(), url)
        assert "TID LAB00002" in second.wait_for(MENU_HINT)
        third = Tab(context.new_page(), url)
        notice = " ".join(third.wait_for("All terminal ids are in use").split())
        assert "LAB00001..LAB00002 (2 ids)" in notice and "--tid-pool" in notice

        first.page.close()
        wait_released(locks / "LAB00001.lock")
        again = Tab(context.new_page(), url)
        assert "TID LAB00001" in again.wait_for(MENU_HINT)
        served.stop()  # with the tabs still open
    wait_released(locks / "LAB00001.lock")
    wait_released(locks / "LAB00002.lock")


def test_browser_tab_shows_why_its_terminal_cannot_start(tmp_path: Path, context: Any) -> None:
    """A tab whose id has an unreadable journal shows the error on the page, naming the file,
    not an empty 'session ended'; the journal is left as it was."""
    data = tmp_path / "data"
    journal = data / "LAB00001" / "journal.json"
    journal.parent.mkdir(parents=True)
    journal.write_text("{not json", encoding="utf-8")
    with served_terminals(data, "--tid-pool", "LAB00001") as served:
        tab = Tab(context.new_page(), served.url)
        notice = " ".join(tab.wait_for("cannot start").split())
        tab.page.close()
    assert "journal" in notice and "LAB00001" in notice and "unreadable" in notice, notice
    assert journal.read_text(encoding="utf-8") == "{not json"
