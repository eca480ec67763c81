"""Helpers for the terminal's pilot tests: wait for widget state, read the screen as text,
talk to a real host's admin API."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from textual.pilot import Pilot

from scenarios.admin import BlockingAdminClient
from terminal.app import PosApp
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.flow import Step


@dataclass(frozen=True)
class RealHost:
    """A running host: ISO port, admin port and token."""

    port: int
    admin_port: int
    token: str

    @property
    def api(self) -> BlockingAdminClient:
        """The host's admin API through the project's one admin client."""
        return BlockingAdminClient(self.admin_port, self.token)


async def until(pilot: Pilot[None], ready: Callable[[], bool], timeout_s: float = 20.0,
                what: str = "the expected state") -> None:
    """Let the app run until ``ready()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


def screen_text(pilot: Pilot[None]) -> str:
    """Everything the current screen shows, as plain text lines."""
    strips = pilot.app.screen._compositor.render_strips()  # noqa: SLF001
    return "\n".join(strip.text for strip in strips)


PANS = [c.pan.digits for c in load_deck()]
SILENT_CARD = PANS.index("4000000000000119")  # the host never answers it
Script = Callable[[PosApp, Pilot[None]], Awaitable[None]]


def assert_no_full_pan(pilot: Pilot[None]) -> None:
    """Fail when the screen shows any deck card's full PAN."""
    text = screen_text(pilot)
    leaked = [pan for pan in PANS if pan in text.replace(" ", "")]
    assert not leaked, f"full PAN on screen: {len(leaked)} card(s)"


def drive(config: TerminalConfig, run: Any, script: Script,
          prepare: Callable[[PosApp], None] | None = None,
          size: tuple[int, int] = (80, 24)) -> PosApp:
    """Start the app at ``size`` (``prepare`` sees it first), wait until it is online, run
    ``script``."""
    app = PosApp(config)
    if prepare is not None:
        prepare(app)

    async def go() -> None:
        async with app.run_test(size=size) as pilot:
            await until(pilot, lambda: app.link_state == "ONLINE", what="sign-on")
            await script(app, pilot)

    run(go(), timeout=90)
    return app


async def result(app: PosApp, pilot: Pilot[None]) -> str:
    """Wait for the result screen; return its text plus the unwrapped result detail."""
    await until(pilot, lambda: app.state.step is Step.RESULT, what="the result")
    assert_no_full_pan(pilot)
    detail = str(app.query_one("#result-detail").render())
    return screen_text(pilot) + "\n" + " ".join(detail.split())


async def sale(app: PosApp, pilot: Pilot[None], keys: str, card_down: int = 0,
               mode: str = "i") -> str:
    """Menu 1, key the amount, pick a card, present it; return the result screen text."""
    await pilot.press("1", *keys, "enter")
    assert app.state.step is Step.CARD
    assert_no_full_pan(pilot)
    await pilot.press(*(["down"] * card_down), mode)
    text = await result(app, pilot)
    await pilot.press("enter")
    return text


async def refund(app: PosApp, pilot: Pilot[None], keys: str | None) -> str:
    """Menu 2, pick the newest refundable sale, amount (default: remaining), reason Return."""
    await pilot.press("2")
    assert app.state.step is Step.ORIGINAL
    assert_no_full_pan(pilot)
    await pilot.press("enter")
    assert app.state.step is Step.AMOUNT
    if keys is not None:
        await pilot.press("delete", *keys)
    await pilot.press("enter", "4")  # reason 4: Return
    assert app.state.step is Step.CARD
    await pilot.press("i")
    assert app.state.step is Step.SUPERVISOR
    await pilot.press(*"0000", "enter")
    text = await result(app, pilot)
    await pilot.press("enter")
    return text
