"""Screens reached from the menu: settlement, batch totals, settings, journal and receipts.

Each is a plain Textual screen over the app's journal and engine; Escape goes back to the menu.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from protocol.money import Money
from terminal import receipt
from terminal.engine import SettleOutcome
from terminal.journal import Txn
from terminal.widgets import ReceiptView

if TYPE_CHECKING:
    from terminal.app import PosApp


def money_text(minor: int | None, currency: str) -> str:
    """An amount for a table cell; ``-`` when unknown."""
    return Money(minor, currency).format() if minor is not None else "-"


class _SubScreen(Screen[None]):
    """A screen reached from the menu: Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    @property
    def pos(self) -> PosApp:
        """The app, typed."""
        return cast("PosApp", self.app)

    def action_back(self) -> None:
        """Return to the menu."""
        self.dismiss()
        self.pos.refresh_status()

    def totals_text(self) -> str:
        """The open batch's totals as a small table."""
        cur = self.pos.config.currency
        t = self.pos.journal.totals(cur)
        net = t.debits_minor - t.credits_minor
        return (f"Batch {self.pos.journal.batch_number}\n\n"
                f"            count    amount ({cur})\n"
                f"Sales       {t.debits_count:>5}  {money_text(t.debits_minor, cur):>14}\n"
                f"Refunds     {t.credits_count:>5}  {money_text(t.credits_minor, cur):>14}\n"
                f"Net                {money_text(net, cur):>14}")


class SettlementScreen(_SubScreen):
    """Batch totals and the settlement exchange."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "settle", "Settle")]

    def compose(self) -> ComposeResult:
        """Title, totals, result."""
        yield Static("SETTLEMENT", classes="title")
        yield Static(self.totals_text(), id="settle-totals", classes="body")
        yield Static("Press Enter to send the batch totals to the host.", id="settle-status",
                     classes="body", markup=False)
        yield Footer()

    def action_settle(self) -> None:
        """Send the totals."""
        self.query_one("#settle-status", Static).update("Settling with the host …")
        self.run_settlement()

    @work(exclusive=True, group="settle")
    async def run_settlement(self) -> None:
        """The 0500 exchange (and upload) in a worker."""
        result: SettleOutcome = await self.pos.engine.settle()
        verdict = "SETTLED" if result.ok else "NOT SETTLED"
        self.query_one("#settle-status", Static).update(
            f"{verdict}: {result.detail}\nClosed batch {result.closed_batch}; "
            f"open batch now {result.new_batch}.\nEsc: back")
        self.query_one("#settle-totals", Static).update(self.totals_text())
        self.pos.refresh_status()


class TotalsScreen(_SubScreen):
    """The open batch's totals."""

    def compose(self) -> ComposeResult:
        """Title and totals."""
        yield Static("BATCH TOTALS", classes="title")
        yield Static(self.totals_text(), classes="body")
        yield Footer()


class SettingsScreen(_SubScreen):
    """The terminal's settings; the supervisor prompt and the response timeout can be changed
    here for this session, the rest on the command line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "supervisor", "Supervisor on/off"),
        Binding("plus,equals_sign", "timeout(1)", "Timeout +1 s"),
        Binding("minus", "timeout(-1)", "Timeout -1 s"),
    ]

    def compose(self) -> ComposeResult:
        """Title and values."""
        yield Static("SETTINGS", classes="title")
        yield Static(self._text(), id="settings-text", classes="body", markup=False)
        yield Footer()

    def _text(self) -> str:
        c = self.pos.config
        on = {True: "on", False: "off"}
        return (
            f"Host               {c.address}  (profile {c.profile})\n"
            f"Terminal id        {c.terminal_id}\nMerchant id        {c.merchant_id}\n"
            f"Currency           {c.currency}\n"
            f"Response timeout   {c.timeout_s_response:g} s       (+ / -)\n"
            f"Reversal repeats   {c.reversal_repeats}\n"
            f"Echo every         {c.echo_interval_s:g} s\n"
            f"Supervisor         refund {on[c.supervisor_for_refund]}, "
            f"void {on[c.supervisor_for_void]}   (S)\n"
            f"Data directory     {c.data_dir}\n\n"
            "Changes here last for this session; use poslab-terminal's options (--help) "
            "to start with other values.")

    def action_supervisor(self) -> None:
        """Ask for the supervisor password before refunds and voids, or stop asking."""
        c = self.pos.config
        wanted = not (c.supervisor_for_refund and c.supervisor_for_void)
        self.pos.apply_config(replace(c, supervisor_for_refund=wanted,
                                      supervisor_for_void=wanted))
        self.query_one("#settings-text", Static).update(self._text())

    def action_timeout(self, delta_s: int) -> None:
        """Lengthen or shorten the response timeout (1 to 120 s)."""
        c = self.pos.config
        value = min(max(c.timeout_s_response + delta_s, 1.0), 120.0)
        self.pos.apply_config(replace(c, timeout_s_response=value))
        self.query_one("#settings-text", Static).update(self._text())


class JournalScreen(_SubScreen):
    """Every journal line; Enter shows (reprints) its receipt."""

    def compose(self) -> ComposeResult:
        """The table."""
        yield Static("JOURNAL  (Enter: reprint receipt)", classes="title")
        yield DataTable(id="journal-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the table, newest first."""
        table = self.query_one(DataTable)
        table.add_columns("#", "Time", "Type", "Card", "Amount", "Result", "RRN", "Batch")
        cur = self.pos.config.currency
        for txn in reversed(list(self.pos.journal)):
            result = txn.status.value.replace("_", " ")
            if txn.response_code and txn.status.value == "declined":
                result = f"declined {txn.response_code}"
            if txn.voided:
                result += " (voided)"
            table.add_row(str(txn.seq), txn.local_time[5:16].replace("T", " "),
                          txn.kind.heading, txn.masked_pan or "-",
                          money_text(txn.amount_minor, cur), result, txn.rrn or "-", txn.batch,
                          key=str(txn.seq))
        table.focus()

    @on(DataTable.RowSelected)
    def _reprint(self, event: DataTable.RowSelected) -> None:
        txn = self.pos.journal.get(int(str(event.row_key.value)))
        self.app.push_screen(ReceiptScreen(txn))


class ReceiptScreen(_SubScreen):
    """Both copies of one receipt; P saves it again as a text file."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("p", "reprint", "Reprint to file")]

    def __init__(self, txn: Txn) -> None:
        super().__init__()
        self.txn = txn

    def compose(self) -> ComposeResult:
        """The slip."""
        yield Static(f"RECEIPT  {self.txn.kind.heading}  STAN {self.txn.stan}",
                     classes="title")
        yield ReceiptView(id="reprint")
        yield Footer()

    def on_mount(self) -> None:
        """Render both copies."""
        c = self.pos.config
        self.query_one(ReceiptView).show(
            receipt.text(self.txn, c.merchant_id, c.terminal_id).splitlines())

    def action_reprint(self) -> None:
        """Write the receipt file again."""
        c = self.pos.config
        path = receipt.save(self.txn, c.data_dir, c.merchant_id, c.terminal_id)
        self.notify(f"Receipt saved to {path}")
