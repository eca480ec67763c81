"""Snapshot tests of the terminal's main screens at 80x24 (pytest-textual-snapshot).

The fake host, a pinned clock and fixed card choices make every screen deterministic.
Refresh the baselines with ``pytest tests/terminal --snapshot-update`` after a deliberate
layout change, and look at them before committing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from term_helpers import until
from textual.pilot import Pilot
from textual.widgets import DataTable

from terminal.app import JournalScreen, PosApp
from terminal.config import TerminalConfig
from terminal.flow import Step

SIZE = (80, 24)
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
