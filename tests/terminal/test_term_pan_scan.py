"""No screen ever shows a full PAN: every key press of a long session is followed by a scan
of the rendered screen for each deck card's PAN, with the message inspector open below the
flow (a 100x40 window)."""

from __future__ import annotations

from typing import Any

from term_helpers import screen_text, until
from textual.pilot import Pilot

from terminal.app import PosApp
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.flow import Step

PANS = [c.pan.digits for c in load_deck()]


def test_no_screen_shows_a_full_pan(config: TerminalConfig, run: Any) -> None:
    """Sale (every entry mode), refund, void, journal, reprint, totals, settlement, settings
    and the inspector: after each key the screen holds no full PAN."""
    app = PosApp(config)
    screens: list[str] = []

    async def keys(pilot: Pilot[None], *pressed: str) -> None:
        for key in pressed:
            await pilot.press(key)
            text = screen_text(pilot)
            screens.append(text)
            flat = text.replace(" ", "")
            assert not [pan for pan in PANS if pan in flat], f"full PAN after {key!r}"

    async def done(pilot: Pilot[None]) -> None:
        await until(pilot, lambda: app.state.step is Step.RESULT, what="the result")
        await keys(pilot, "c", "m", "enter")

    async def go() -> None:
        async with app.run_test(size=(100, 40)) as pilot:
            await until(pilot, lambda: app.link_state == "ONLINE", what="sign-on")
            assert "MESSAGES" in screen_text(pilot)  # the inspector shows the whole session
            for down, mode in enumerate("sitm"):
                await keys(pilot, "1", "2", "0", "0", "enter", *["down"] * down, mode)
                await done(pilot)
            await keys(pilot, "2", "enter", "enter", "1", "i", *"0000", "enter")
            await done(pilot)
            await keys(pilot, "3", "enter", "enter", *"0000", "enter")
            await done(pilot)
            await keys(pilot, "5", "enter", "p", "escape", "escape")
            await keys(pilot, "6", "escape", "7", "escape", "4", "enter")
            await until(pilot, lambda: "SETTLED" in screen_text(pilot), what="settlement")
            await keys(pilot, "escape")

    run(go(), timeout=60)
    assert len(screens) > 60
    assert any("411111******1111" in s for s in screens)
    assert any("**** 1111" in s for s in screens)  # the customer copy
    assert len(app.traffic) > 10
