"""No screen ever shows a full PAN: every key press of a session is followed by a scan of the
rendered screen for each deck card's PAN, with the message inspector open
below the flow (a 100x40 window).

The walk through every screen is three sessions (sales; refund and void; journal, totals,
settings and settlement), so each stays well inside its time budget on a loaded machine and
they can run on different workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from term_helpers import screen_text, until
from textual.pilot import Pilot

from terminal.app import PosApp
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.flow import Step

PANS = [c.pan.digits for c in load_deck()]


Keys = Callable[..., Awaitable[None]]
Session = Callable[[PosApp, Pilot[None], Keys], Awaitable[None]]


def _scan_session(config: TerminalConfig, run: Any, session: Session) -> tuple[PosApp, list[str]]:
    """Run ``session`` with the message inspector open; after every key the screen must hold
    no full PAN. Returns the app and every screen seen."""
    app = PosApp(config)
    screens: list[str] = []

    async def keys(pilot: Pilot[None], *pressed: str) -> None:
        for key in pressed:
            await pilot.press(key)
            text = screen_text(pilot)
            screens.append(text)
            flat = text.replace(" ", "")
            assert not [pan for pan in PANS if pan in flat], f"full PAN after {key!r}"

    async def go() -> None:
        async with app.run_test(size=(100, 40)) as pilot:
            await until(pilot, lambda: app.link_state == "ONLINE", what="sign-on")
            assert "MESSAGES" in screen_text(pilot)  # the inspector shows the whole session
            await session(app, pilot, keys)

    run(go(), timeout=60)
    return app, screens


async def _result_and_copies(app: PosApp, pilot: Pilot[None], keys: Keys) -> None:
    """Wait for the result, show the customer and merchant copies, finish."""
    await until(pilot, lambda: app.state.step is Step.RESULT, what="the result")
    await keys(pilot, "c", "m", "enter")


async def _sale(app: PosApp, pilot: Pilot[None], keys: Keys, card: int = 0,
                mode: str = "i") -> None:
    """A 12.00 sale with deck card ``card`` presented by ``mode`` (s, i, t or m)."""
    await keys(pilot, "1", "2", "0", "0", "enter", *["down"] * card, mode)
    await _result_and_copies(app, pilot, keys)


def test_no_screen_shows_a_full_pan_in_sales(config: TerminalConfig, run: Any) -> None:
    """A sale in every entry mode (swipe, insert, tap, manual), each with its result and both
    receipt copies: after each key the screen holds no full PAN."""

    async def session(app: PosApp, pilot: Pilot[None], keys: Keys) -> None:
        for card, mode in enumerate("sitm"):
            await _sale(app, pilot, keys, card, mode)

    app, screens = _scan_session(config, run, session)
    assert len(screens) > 30
    assert any("411111******1111" in s for s in screens)
    assert any("**** 1111" in s for s in screens)  # the customer copy
    assert len(app.traffic) > 4


def test_no_screen_shows_a_full_pan_in_refund_and_void(config: TerminalConfig,
                                                       run: Any) -> None:
    """A refund of a sale and a void of another, through the original picker, the reason, the
    card and the supervisor password: no screen shows a full PAN."""

    async def session(app: PosApp, pilot: Pilot[None], keys: Keys) -> None:
        await _sale(app, pilot, keys)
        await keys(pilot, "2", "enter", "enter", "1", "i", *"0000", "enter")
        await _result_and_copies(app, pilot, keys)
        await _sale(app, pilot, keys)
        await keys(pilot, "3", "enter", "enter", *"0000", "enter")
        await _result_and_copies(app, pilot, keys)

    app, screens = _scan_session(config, run, session)
    assert len(screens) > 30
    assert any("411111******1111" in s for s in screens)
    assert len(app.traffic) > 6


def test_no_screen_shows_a_full_pan_in_journal_totals_settings_settlement(
        config: TerminalConfig, run: Any) -> None:
    """After a sale: the journal, a reprint, batch totals, settings and a settlement: no
    screen shows a full PAN."""

    async def session(app: PosApp, pilot: Pilot[None], keys: Keys) -> None:
        await _sale(app, pilot, keys)
        await keys(pilot, "5", "enter", "p", "escape", "escape")
        await keys(pilot, "6", "escape", "7", "escape", "4", "enter")
        await until(pilot, lambda: "SETTLED" in screen_text(pilot), what="settlement")
        await keys(pilot, "escape")

    app, screens = _scan_session(config, run, session)
    assert len(screens) > 20
    assert any("411111******1111" in s for s in screens)
    assert len(app.traffic) > 3
