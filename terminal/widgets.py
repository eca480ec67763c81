"""Terminal widgets: the keypad, the amount display, the status line, the receipt view and the
message inspector's pane.

The keypad follows Textual's calculator example: physical keys are routed to
``Button.press()`` so keyboard and mouse share one path.
"""

from __future__ import annotations

import enum
from dataclasses import replace

from textual.app import ComposeResult
from textual.containers import Grid, Vertical, VerticalScroll
from textual.dom import DOMNode
from textual.widgets import Button, Digits, Static

from protocol.money import Money
from terminal.i18n import _
from terminal.times import day_month

KEYPAD = ("7", "8", "9", "4", "5", "6", "1", "2", "3", "00", "0", "back", "clear", "ok")
_LABELS = {"back": "⌫", "clear": "C", "ok": "OK"}


class Keypad(Grid):
    """An on-screen keypad; buttons never take focus so number keys always reach the app."""

    def compose(self) -> ComposeResult:
        """Lay out the keys."""
        for key in KEYPAD:
            button = Button(_LABELS.get(key, key), id=f"key-{key}", classes="key")
            button.can_focus = False
            if key == "ok":
                button.variant = "success"
            elif key in ("back", "clear"):
                button.variant = "warning"
            yield button


class AmountDisplay(Digits):
    """The keyed amount in large digits."""

    def show(self, amount: Money) -> None:
        """Render ``amount`` (major units with its decimals)."""
        self.update(amount.format())


class StatusLine(Static):
    """One line: ids, batch, business date and link state (on every screen)."""


def translate_bindings(node: DOMNode) -> None:
    """Show ``node``'s key descriptions (declared in English on its class, marked ``N_``) in the
    language in use. Textual gives each node its own copy of the class's bindings map; its
    lists are shared with the class, so they are replaced, never changed in place."""
    bindings = node._bindings  # noqa: SLF001 - Textual has no public hook for this
    bindings.key_to_bindings = {
        key: [replace(b, description=_(b.description)) if b.description else b for b in group]
        for key, group in bindings.key_to_bindings.items()}


def status_text(terminal_id: str, merchant_id: str, batch: str, business_date: str | None,
                link: str) -> str:
    """The status line's text; the business date is the host's DE15 (MMDD)."""
    date = day_month(business_date)
    return _(" TID {tid}  MID {mid}  BATCH {batch}  BUS.DATE {date}  {link}").format(
        tid=terminal_id, mid=merchant_id, batch=batch, date=date, link=link)


class ReceiptView(VerticalScroll):
    """A scrollable paper slip."""

    def compose(self) -> ComposeResult:
        """One static holding the slip text."""
        yield Static("", classes="slip", markup=False)

    def show(self, lines: list[str]) -> None:
        """Replace the slip's text."""
        self.query_one(".slip", Static).update("\n".join(lines))


class MessagePane(Vertical):
    """The message inspector: a title saying how to scroll, then the rendered traffic.

    The text is one static in a scrolling container (no wrapping), so a line number is a
    scroll offset: :meth:`show` opens the pane at a chosen message, scrolled fully left.
    """

    HELP = "MESSAGES (Tab, then ↑↓ PgUp PgDn)"
    HELP_FULL = "MESSAGES  ↑↓ PgUp PgDn Home End ←→ scroll  ·  F2 or Esc: back"

    def compose(self) -> ComposeResult:
        """Title and the scrolling text."""
        yield Static(self.HELP, id="inspector-head", markup=False)
        with VerticalScroll(id="inspector-scroll"):
            yield Static("", id="inspector-text", markup=False)

    def show(self, lines: list[str], anchor: int | None, help_text: str = HELP) -> None:
        """Replace the text; with an ``anchor``, scroll so that line is at the top and column 0
        at the left (None keeps the operator's scroll position)."""
        self.query_one("#inspector-head", Static).update(help_text)
        self.query_one("#inspector-text", Static).update(
            "\n".join(lines) if lines else "(no messages yet)")
        if anchor is not None:
            scroll = self.query_one("#inspector-scroll", VerticalScroll)
            scroll.call_after_refresh(scroll.scroll_to, 0, anchor, animate=False)


#: The flow is laid out for 80 columns; the inspector goes beside it from this many.
FLOW_WIDTH = 80
WIDE = 118
#: From this many rows (on narrower windows) the inspector goes below the flow.
TALL = 36


class PanePlace(enum.StrEnum):
    """Where the message inspector goes: beside or below the flow, or over it (F2)."""

    BESIDE = "beside"
    BELOW = "below"
    COVER = "cover"


def pane_place(width: int, height: int) -> PanePlace:
    """The inspector's place in a window of ``width`` x ``height`` cells."""
    if width >= WIDE:
        return PanePlace.BESIDE
    return PanePlace.BELOW if height >= TALL else PanePlace.COVER
