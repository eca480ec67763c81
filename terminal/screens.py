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
from terminal import receipt, times
from terminal.engine import SettleOutcome
from terminal.journal import Txn, TxnStatus
from terminal.widgets import ReceiptView, StatusLine

if TYPE_CHECKING:
    from terminal.app import PosApp


def money_text(minor: int | None, currency: str) -> str:
    """An amount for a table cell; ``-`` when unknown."""
    return Money(minor, currency).format() if minor is not None else "-"


def plural(count: int, noun: str) -> str:
    """``1 reversal``, ``2 reversals``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def card_cell(masked_pan: str | None, wide: bool) -> str:
    """A card for a table cell: the masked PAN, or on narrow screens only its last four."""
    if not masked_pan:
        return "-"
    return masked_pan if wide else f"**{masked_pan[-4:]}"


_RESULTS = {TxnStatus.REVERSAL_PENDING: "to reverse"}


def result_cell(txn: Txn) -> str:
    """What became of a journal line, in at most 11 characters."""
    if txn.voided:
        return "voided"
    if txn.status is TxnStatus.DECLINED and txn.response_code:
        return f"declined {txn.response_code}"
    return _RESULTS.get(txn.status, txn.status.value)


class _SubScreen(Screen[None]):
    """A screen reached from the menu, under the same status line: Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back")]

    @property
    def pos(self) -> PosApp:
        """The app, typed."""
        return cast("PosApp", self.app)

    def compose(self) -> ComposeResult:
        """The status line, this screen's widgets, the footer."""
        yield StatusLine(id="status")
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        """The widgets between the status line and the footer."""
        yield from ()

    def on_screen_resume(self) -> None:
        """Fill in the status line."""
        self.pos.refresh_status()

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

    #: the batch was settled here: Enter has nothing more to send.
    done = False
    busy = False

    def body(self) -> ComposeResult:
        """Title, totals, result."""
        yield Static("SETTLEMENT", classes="title")
        yield Static(self.totals_text(), id="settle-totals", classes="body")
        yield Static("Press Enter to send the batch totals to the host.", id="settle-status",
                     classes="body", markup=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer Settle only until the batch is settled, and not while it is being sent."""
        if action == "settle":
            return not (self.done or self.busy)
        return True

    def action_settle(self) -> None:
        """Send the totals."""
        self.busy = True
        self.refresh_bindings()
        self.query_one("#settle-status", Static).update("Settling with the host …")
        self.run_settlement()

    @work(exclusive=True, group="settle")
    async def run_settlement(self) -> None:
        """The 0500 exchange (and upload) in a worker."""
        result: SettleOutcome = await self.pos.engine.settle()
        self.busy, self.done = False, result.ok
        self.refresh_bindings()
        if result.ok:
            text = (f"SETTLED: {result.detail}\nClosed batch {result.closed_batch}; "
                    f"open batch now {result.new_batch}.\n\nEsc: back to the menu")
        else:
            text = (f"NOT SETTLED: {result.detail}\nBatch {result.closed_batch} stays open."
                    "\n\nEnter: try again   Esc: back to the menu")
        self.query_one("#settle-status", Static).update(text)
        self.query_one("#settle-totals", Static).update(self.totals_text())
        self.pos.refresh_status()


class TotalsScreen(_SubScreen):
    """The open batch's totals."""

    def body(self) -> ComposeResult:
        """Title and totals."""
        yield Static("BATCH TOTALS", classes="title")
        yield Static(self.totals_text(), classes="body")


class SettingsScreen(_SubScreen):
    """The terminal's settings; the supervisor prompt and the response timeout can be changed
    here for this session, the rest on the command line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "supervisor", "Supervisor on/off"),
        Binding("plus,equals_sign", "timeout(1)", "Timeout +1 s"),
        Binding("minus", "timeout(-1)", "Timeout -1 s"),
    ]

    def body(self) -> ComposeResult:
        """Title and values."""
        yield Static("SETTINGS", classes="title")
        yield Static(self._text(), id="settings-text", classes="body", markup=False)

    def _text(self) -> str:
        c = self.pos.config
        on = {True: "on", False: "off"}
        return (
            f"Host               {c.address}  (profile {c.profile})\n"
            f"Terminal id        {c.terminal_id}\nMerchant id        {c.merchant_id}\n"
            f"Currency           {c.currency}\n"
            f"Time zone          {c.timezone}   (times on screens and slips)\n"
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

    def body(self) -> ComposeResult:
        """The table."""
        yield Static("JOURNAL  (Enter: reprint receipt)", classes="title")
        yield DataTable(id="journal-table", cursor_type="row")

    def on_mount(self) -> None:
        """Fill the table, newest first; at 80 columns the card shrinks to its last four so
        the whole RRN and the batch stay in view."""
        table = self.query_one(DataTable)
        table.add_columns("Time", "Type", "Card", "Amount", "Result", "RRN", "Batch")
        cur = self.pos.config.currency
        tz = times.zone(self.pos.config.timezone)
        for txn in reversed(list(self.pos.journal)):
            table.add_row(times.when(txn, tz)[:12], txn.kind.heading,
                          card_cell(txn.masked_pan, self.pos.wide),
                          money_text(txn.amount_minor, cur), result_cell(txn), txn.rrn or "-",
                          txn.batch, key=str(txn.seq))
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

    def body(self) -> ComposeResult:
        """The slip."""
        yield Static(f"RECEIPT  {self.txn.kind.heading}  STAN {self.txn.stan}  "
                     "(↑↓ PgUp PgDn scroll)", classes="title")
        yield ReceiptView(id="reprint")

    def on_mount(self) -> None:
        """Render both copies."""
        c = self.pos.config
        view = self.query_one(ReceiptView)
        view.show(receipt.text(self.txn, c.merchant_id, c.terminal_id, c.timezone).splitlines())
        view.focus()

    def action_reprint(self) -> None:
        """Write the receipt file again."""
        c = self.pos.config
        path = receipt.save(self.txn, c.data_dir, c.merchant_id, c.terminal_id, c.timezone)
        self.notify(f"Receipt saved to {path}")
