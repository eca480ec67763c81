"""Helpers for the terminal's pilot tests: wait for widget state, read the screen as text."""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.pilot import Pilot


async def until(pilot: Pilot[None], ready: Callable[[], bool], timeout_s: float = 8.0,
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
