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

from protocol.cup_private import CupTotals
from protocol.money import Money
from terminal import receipt, times
from terminal.cup_session import cup_totals
from terminal.engine import SettleOutcome
from terminal.i18n import N_, _, ngettext
from terminal.journal import Txn, TxnStatus
from terminal.widgets import ReceiptView, StatusLine, translate_bindings

if TYPE_CHECKING:
    from terminal.app import PosApp


def money_text(minor: int | None, currency: str) -> str:
    """An amount for a table cell; ``-`` when unknown."""
    return Money(minor, currency).format() if minor is not None else "-"


def plural(count: int, noun: str, nouns: str) -> str:
    """``1 reversal``, ``2 reversals`` (``noun`` and ``nouns`` are message ids)."""
    return f"{count} {ngettext(noun, nouns, count)}"


def card_cell(masked_pan: str | None, wide: bool) -> str:
    """A card for a table cell: the masked PAN, or on narrow screens only its last four."""
    if not masked_pan:
        return "-"
    return masked_pan if wide else f"**{masked_pan[-4:]}"


def cup_totals_text(batch: str, totals: CupTotals, currency: str) -> str:
    """CUP settlement totals as the 0500 carries them: debits (every approved sale, also when
    voided or refunded later) and credits (refunds and voids), domestic and foreign cards."""
    rows = [(_("Domestic"), totals.domestic), (_("Foreign"), totals.foreign)]
    lines = [_("Batch {batch}  (China UnionPay totals, {currency})").format(
        batch=batch, currency=currency), "",
        "{:<10}{:>5} {:>13}  {:>5} {:>13}".format("", _("count"), _("debits"), _("count"),
                                                 _("credits"))]
    for name, group in rows:
        lines.append(f"{name:<10}{group.debit_count:>5} "
                     f"{money_text(group.debit_amount, currency):>13}  {group.credit_count:>5} "
                     f"{money_text(group.credit_amount, currency):>13}")
    return "\n".join(lines)


_RESULTS = {TxnStatus.REVERSAL_PENDING: N_("to reverse"), TxnStatus.PENDING: N_("pending"),
            TxnStatus.APPROVED: N_("approved"), TxnStatus.DECLINED: N_("declined"),
            TxnStatus.REVERSED: N_("reversed"), TxnStatus.ADVICE_PENDING: N_("to repeat")}


def result_cell(txn: Txn) -> str:
    """What became of a journal line, in at most 11 characters."""
    if txn.voided:
        return _("voided")
    if txn.status is TxnStatus.DECLINED and txn.response_code:
        return _("declined {code}").format(code=txn.response_code)
    return _(_RESULTS.get(txn.status, txn.status.value))


class _SubScreen(Screen[None]):
    """A screen reached from the menu, under the same status line: Escape goes back."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", N_("Back"))]

    def __init__(self) -> None:
        super().__init__()
        translate_bindings(self)

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
        """The open batch's totals as a small table (on CUP, as the 0500 counts them)."""
        cur = self.pos.config.currency
        if self.pos.cup:
            return cup_totals_text(self.pos.journal.batch_number,
                                   cup_totals(self.pos.journal.open_batch()), cur)
        t = self.pos.journal.totals(cur)
        net = t.debits_minor - t.credits_minor
        return _("Batch {batch}\n\n"
                 "            count    amount ({currency})\n"
                 "Sales       {sales_count:>5}  {sales:>14}\n"
                 "Refunds     {refunds_count:>5}  {refunds:>14}\n"
                 "Net                {net:>14}").format(
            batch=self.pos.journal.batch_number, currency=cur, sales_count=t.debits_count,
            sales=money_text(t.debits_minor, cur), refunds_count=t.credits_count,
            refunds=money_text(t.credits_minor, cur), net=money_text(net, cur))


class SettlementScreen(_SubScreen):
    """Batch totals and the settlement exchange."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "settle", N_("Settle"))]

    #: the batch was settled here: Enter has nothing more to send.
    done = False
    busy = False

    def body(self) -> ComposeResult:
        """Title, totals, result."""
        yield Static(_("SETTLEMENT"), classes="title")
        yield Static(self.totals_text(), id="settle-totals", classes="body")
        yield Static(_("Press Enter to send the batch totals to the host."), id="settle-status",
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
        self.query_one("#settle-status", Static).update(_("Settling with the host …"))
        self.run_settlement()

    @work(exclusive=True, group="settle")
    async def run_settlement(self) -> None:
        """The 0500 exchange (and upload) in a worker."""
        result: SettleOutcome = await self.pos.engine.settle()
        self.busy, self.done = False, result.ok
        self.refresh_bindings()
        if result.ok:
            text = _("SETTLED: {detail}\nClosed batch {closed}; open batch now {new}.\n\n"
                     "Esc: back to the menu").format(detail=result.detail,
                                                    closed=result.closed_batch,
                                                    new=result.new_batch)
        else:
            text = _("NOT SETTLED: {detail}\nBatch {closed} stays open.\n\n"
                     "Enter: try again   Esc: back to the menu").format(
                detail=result.detail, closed=result.closed_batch)
        self.query_one("#settle-status", Static).update(text)
        self.query_one("#settle-totals", Static).update(self.totals_text())
        self.pos.refresh_status()


class TotalsScreen(_SubScreen):
    """The open batch's totals."""

    def body(self) -> ComposeResult:
        """Title and totals."""
        yield Static(_("BATCH TOTALS"), classes="title")
        yield Static(self.totals_text(), classes="body")


class SettingsScreen(_SubScreen):
    """The terminal's settings; the supervisor prompt and the response timeout can be changed
    here for this session, the rest on the command line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "supervisor", N_("Supervisor on/off")),
        Binding("plus,equals_sign", "timeout(1)", N_("Timeout +1 s")),
        Binding("minus", "timeout(-1)", N_("Timeout -1 s")),
    ]

    def body(self) -> ComposeResult:
        """Title and values."""
        yield Static(_("SETTINGS"), classes="title")
        yield Static(self._text(), id="settings-text", classes="body", markup=False)

    def _text(self) -> str:
        c = self.pos.config
        on = {True: _("on"), False: _("off")}
        return _(
            "Host               {address}  (profile {profile})\n"
            "Terminal id        {tid}\nMerchant id        {mid}\n"
            "Currency           {currency}\n"
            "Time zone          {timezone}   (times on screens and slips)\n"
            "Response timeout   {timeout} s       (+ / -)\n"
            "Reversal repeats   {repeats}\n"
            "Echo every         {echo} s\n"
            "Supervisor         refund {refund}, void {void}   (S)\n"
            "Data directory     {data_dir}\n\n"
            "Changes here last for this session; use poslab-terminal's options (--help) "
            "to start with other values.").format(
            address=c.address, profile=c.profile, tid=c.terminal_id, mid=c.merchant_id,
            currency=c.currency, timezone=c.timezone, timeout=f"{c.timeout_s_response:g}",
            repeats=c.reversal_repeats, echo=f"{c.echo_interval_s:g}",
            refund=on[c.supervisor_for_refund], void=on[c.supervisor_for_void],
            data_dir=c.data_dir)

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
        yield Static(_("JOURNAL  (Enter: reprint receipt)"), classes="title")
        yield DataTable(id="journal-table", cursor_type="row")

    def on_mount(self) -> None:
        """Fill the table, newest first; at 80 columns the card shrinks to its last four so
        the whole RRN and the batch stay in view."""
        table = self.query_one(DataTable)
        table.add_columns(_("Time"), _("Type"), _("Card"), _("Amount"), _("Result"), _("RRN"),
                          _("Batch"))
        cur = self.pos.config.currency
        tz = times.zone(self.pos.config.timezone)
        for txn in reversed(list(self.pos.journal)):
            table.add_row(times.when(txn, tz)[:12], _(txn.kind.heading),
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

    BINDINGS: ClassVar[list[BindingType]] = [Binding("p", "reprint", N_("Reprint to file"))]

    def __init__(self, txn: Txn) -> None:
        super().__init__()
        self.txn = txn

    def body(self) -> ComposeResult:
        """The slip."""
        yield Static(_("RECEIPT  {kind}  STAN {stan}  (↑↓ PgUp PgDn scroll)").format(
            kind=_(self.txn.kind.heading), stan=self.txn.stan), classes="title")
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
        self.notify(_("Receipt saved to {path}").format(path=path))
