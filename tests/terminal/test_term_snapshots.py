"""Snapshot tests of the terminal's main screens at 80x24 (pytest-textual-snapshot).

The fake host, a pinned clock and fixed card choices make every screen deterministic.
Refresh the baselines with ``pytest tests/terminal --snapshot-update`` after a deliberate
layout change, and look at them before committing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from term_helpers import until
from textual.pilot import Pilot
from textual.widgets import DataTable

from terminal.app import JournalScreen, PosApp
from terminal.config import TerminalConfig
from terminal.flow import Step

SIZE = (80, 24)
WIDE = (120, 40)
WHEN = datetime(2026, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=8)))


def _app(config: TerminalConfig) -> PosApp:
    return PosApp(config, clock=lambda: WHEN)


async def _online(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, PosApp)
    await until(pilot, lambda: app.link_state == "ONLINE", what="sign-on")


async def _sale(pilot: Pilot[Any], keys: str = "1250") -> None:
    app = pilot.app
    assert isinstance(app, PosApp)
    await pilot.press("1", *keys, "enter", "i")
    await until(pilot, lambda: app.state.step is Step.RESULT, what="the result")


def test_snapshot_menu(config: TerminalConfig, snap_compare: Any) -> None:
    """The main menu once signed on: ids, batch, business date, link state, key hints."""
    assert snap_compare(_app(config), terminal_size=SIZE, run_before=_online)


def test_snapshot_amount_entry(config: TerminalConfig, snap_compare: Any) -> None:
    """Amount entry with the on-screen keypad after typing 1 2 5 0."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await pilot.press("1", *"1250")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_card_presentation(config: TerminalConfig, snap_compare: Any) -> None:
    """The card deck with masked PANs and the four ways to present a card."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await pilot.press("1", *"1250", "enter")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_sale_approved(config: TerminalConfig, snap_compare: Any) -> None:
    """An approved sale with its merchant slip."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot)

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_refund_original_picker(config: TerminalConfig, snap_compare: Any) -> None:
    """The refund's list of originals with amount, RRN and what is left to refund."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot, "10000")
        await pilot.press("enter", "2")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_over_refund_declined(config: TerminalConfig, snap_compare: Any) -> None:
    """An over-refund declined with the host's explanation in plain words."""

    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, PosApp)
        await _online(pilot)
        await _sale(pilot, "4000")
        await pilot.press("enter", "2", "enter", "delete", *"5000", "enter", "4", "i",
                          *"0000", "enter")
        await until(pilot, lambda: app.state.step is Step.RESULT, what="the decline")

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_journal(config: TerminalConfig, snap_compare: Any) -> None:
    """The journal after a sale and a decline."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot)
        await pilot.press("enter")
        await pilot.press("1", *"300", "enter", "down", "down", "down", "i")
        app = pilot.app
        assert isinstance(app, PosApp)
        await until(pilot, lambda: app.state.step is Step.RESULT, what="the decline")
        await pilot.press("enter", "5")
        await until(pilot, lambda: isinstance(app.screen, JournalScreen), what="the journal")
        await until(pilot, lambda: app.screen.query_one(DataTable).row_count == 2,
                    what="journal rows")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_settlement(config: TerminalConfig, snap_compare: Any) -> None:
    """A balanced settlement and the next batch number."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot)
        await pilot.press("enter", "4", "enter")
        app = pilot.app
        assert isinstance(app, PosApp)
        await until(pilot, lambda: app.journal.batch_number == "000002", what="settlement")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_void_after_settlement(config: TerminalConfig, snap_compare: Any) -> None:
    """After settlement the Void list shows the settled sale, marked, with R to key an RRN."""

    async def before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, PosApp)
        await _online(pilot)
        await _sale(pilot)
        await pilot.press("enter", "4", "enter")
        await until(pilot, lambda: app.journal.batch_number == "000002", what="settlement")
        await pilot.press("escape", "3")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_refund_amount_prefilled(config: TerminalConfig, snap_compare: Any) -> None:
    """The refund's amount screen: pre-filled with what is left, saying typing replaces it."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot, "12500")
        await pilot.press("enter", "2", "enter")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_inspector_80x24(config: TerminalConfig, snap_compare: Any) -> None:
    """F2 at 80x24: the inspector fills the window, opens on the sale's 0200, says how to
    scroll (message times pinned)."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot)
        await pilot.press("enter")
        _pin_traffic_times(pilot)
        await pilot.press("f2")
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=SIZE, run_before=before)


def test_snapshot_wide_sale_with_inspector(config: TerminalConfig, snap_compare: Any) -> None:
    """At 120x40 an approved sale and its receipt beside the message inspector."""

    async def before(pilot: Pilot[Any]) -> None:
        await _online(pilot)
        await _sale(pilot)
        _pin_traffic_times(pilot)
        await pilot.press("f2", "f2")  # hide and show again: redrawn with the pinned times
        await pilot.pause()

    assert snap_compare(_app(config), terminal_size=WIDE, run_before=before)


def _pin_traffic_times(pilot: Pilot[Any]) -> None:
    """The inspector stamps messages with the machine's clock: pin them for a stable image."""
    app = pilot.app
    assert isinstance(app, PosApp)
    app.traffic[:] = [replace(item, at=WHEN) for item in app.traffic]
