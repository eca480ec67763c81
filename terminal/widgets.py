"""Terminal widgets: the keypad, the amount display, the status line and the receipt view.

The keypad follows Textual's calculator example: physical keys are routed to
``Button.press()`` so keyboard and mouse share one path.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.widgets import Button, Digits, Static

from protocol.money import Money

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
    """One line: ids, batch, business date and link state."""

    def show(self, terminal_id: str, merchant_id: str, batch: str, business_date: str | None,
             link: str) -> None:
        """Render the status."""
        date = f"{business_date[:2]}/{business_date[2:]}" if business_date else "--/--"
        self.update(f" TID {terminal_id}  MID {merchant_id}  BATCH {batch}  "
                    f"BUS.DATE {date}  {link}")


class ReceiptView(VerticalScroll):
    """A scrollable paper slip."""

    def compose(self) -> ComposeResult:
        """One static holding the slip text."""
        yield Static("", classes="slip", markup=False)

    def show(self, lines: list[str]) -> None:
        """Replace the slip's text."""
        self.query_one(".slip", Static).update("\n".join(lines))
