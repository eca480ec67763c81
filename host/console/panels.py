"""The console's panels and dialogs: each renders a piece of :mod:`host.console.model`, in the
language in use (:mod:`protocol.i18n`): titles and column heads are marked with ``N_`` where
they are declared and translated when a panel mounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from host.console.model import (
    CURRENT,
    DONE,
    FAILED,
    SKIPPED,
    ChainStatus,
    Rung,
    Stage,
    TAccount,
    calendar_days,
    money,
)
from host.console.words import account_name, kind_word, review_state
from protocol.i18n import N_, _

T_WIDTH = 36
"""Columns one T-account takes (two fit side by side at 80 columns)."""
MARKS = {DONE: "✔", CURRENT: "▶", FAILED: "✖", SKIPPED: "–"}


def translate_bindings(node: DOMNode) -> None:
    """Show ``node``'s key descriptions (declared in English on its class, marked ``N_``) in the
    language in use. Textual gives each node its own copy of the class's bindings map, but its
    lists are shared with the class: they are replaced, never changed in place. (The terminal
    has the same few lines; the two may not import each other, and ``protocol`` has no
    Textual.)"""
    bindings = node._bindings  # noqa: SLF001 - Textual has no public hook for this
    bindings.key_to_bindings = {
        key: [replace(b, description=_(b.description)) if b.description else b for b in group]
        for key, group in bindings.key_to_bindings.items()}


def clock_text(at: str) -> str:
    """``2026-03-02T02:00:01.000+00:00`` -> ``03-02 02:00:01`` (the simulated instant, UTC)."""
    if "T" not in at:
        return at
    day, time = at.split("T", 1)
    return f"{day[5:]} {time[:8]}"


def time_text(at: str) -> str:
    """``2026-03-02T02:00:01.000+00:00`` -> ``02:00:01``."""
    return clock_text(at)[-8:]


class LadderPanel(DataTable[str | Text]):
    """Terminal <-> host messages in time order; Enter opens the field-by-field view."""

    BORDER_TITLE = N_("Message ladder")

    def on_mount(self) -> None:
        """Set the columns."""
        self.border_title = _(self.BORDER_TITLE)
        self.cursor_type = "row"
        self.zebra_stripes = True
        # Fixed-format columns get their width up front: a width grown from the rows can lag a
        # burst of rows (seen as an RRN cut to three characters), and these never vary. A head
        # wider than its values (应答码 over a two-digit code) widens its column.
        for label, width in ((N_("time"), 8), ("", 7), ("MTI", 4), (N_("type"), None),
                             (N_("amount"), None), (N_("RC"), 2), (N_("rule"), None),
                             (N_("TID / STAN"), 17), (N_("RRN"), 12)):
            head = _(label) if label else ""
            self.add_column(head, width=None if width is None else max(width, cell_len(head)))

    def add_rung(self, rung: Rung) -> None:
        """Append one message and keep the newest in view."""
        follow = self.cursor_row >= self.row_count - 1
        self._add(rung)
        if follow:
            self.move_cursor(row=self.row_count - 1)

    def show_all(self, rungs: Iterable[Rung]) -> None:
        """Show ``rungs`` afresh (after older ones were put in front), keeping the cursor on
        the message it was on."""
        keep = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value \
            if self.row_count else None
        self.clear()
        for rung in rungs:
            self._add(rung)
        if keep is not None and keep in self.rows:
            self.move_cursor(row=self.get_row_index(keep))
        elif self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def _add(self, rung: Rung) -> None:
        self.add_row(time_text(rung.at), rung.arrow, rung.mti, kind_word(rung.txn_type),
                     rung.amount,
                     Text(rung.rc, style="bold green" if rung.rc == "00" else "bold red")
                     if rung.rc else "", rung.rule, f"{rung.tid} / {rung.stan}", rung.rrn,
                     key=str(rung.id))


class BoardPanel(Static):
    """The refund life cycle of the selected sale, one line per stage."""

    BORDER_TITLE = N_("Refund life cycle")

    def on_mount(self) -> None:
        """Translate the title."""
        self.border_title = _(self.BORDER_TITLE)

    def show(self, rrn: str | None, stages: Sequence[Stage], note: str = "") -> None:
        """Render ``stages`` of the sale ``rrn``."""
        if rrn is None:
            self.update(_("Select a sale or refund on the ladder (↑↓) to follow its refund."))
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(min_width=20)
        table.add_column(min_width=14)
        table.add_column(ratio=1)
        for stage in stages:
            style = {CURRENT: "reverse bold", DONE: "green", FAILED: "bold red",
                     SKIPPED: "dim"}.get(stage.state, "")
            table.add_row(MARKS.get(stage.state, "·"), Text(stage.title, style=style),
                          clock_text(stage.at), stage.detail)
        self.update(Group(Text(_("sale {rrn}").format(rrn=rrn) + (f"  {note}" if note else ""),
                               style="bold"), table))


def t_account(acct: TAccount) -> RenderableType:
    """One T-account: debits left of the stem, credits right, the balance in the title."""
    net = acct.balance_minor
    dr, cr = _("Dr"), _("Cr")
    balance = f"{money(abs(net), acct.currency)} {dr if net > 0 else cr if net < 0 else ''}"
    table = Table(title=f"{account_name(acct.account)}  {balance.strip()}", title_style="bold",
                  box=box.MINIMAL, show_edge=False, width=T_WIDTH, padding=(0, 1))
    table.add_column(dr, justify="right", ratio=1)
    table.add_column(cr, justify="left", ratio=1)
    debits, credits = acct.debits, acct.credits
    if acct.opening_minor:
        opening = _("b/f {amount}").format(amount=money(abs(acct.opening_minor), acct.currency))
        table.add_row(*((opening, "") if acct.opening_minor > 0 else ("", opening)))
    for n in range(max(len(debits), len(credits))):
        left = debits[n] if n < len(debits) else None
        right = credits[n] if n < len(credits) else None
        table.add_row(
            f"{kind_word(left.kind)} {money(left.amount_minor, acct.currency)}" if left else "",
            f"{money(right.amount_minor, acct.currency)} {kind_word(right.kind)}" if right
            else "")
    return table


class LedgerPanel(Static):
    """Ledger postings as T-accounts with running balances, and the hash chain's status."""

    BORDER_TITLE = N_("Ledger")

    def on_mount(self) -> None:
        """Translate the title."""
        self.border_title = _(self.BORDER_TITLE)

    def show(self, accounts: Iterable[TAccount], chain: ChainStatus) -> None:
        """Render the accounts and the chain status line."""
        style = {"verified": "bold green", "broken": "bold red"}.get(chain.state, "yellow")
        parts: list[RenderableType] = [Text(_("hash chain: {status}").format(status=chain.text),
                                            style=style)]
        tables = [t_account(a) for a in accounts]
        parts.append(Columns(tables) if tables else Text(_("no postings yet")))
        self.update(Group(*parts))


class ClockPanel(Static):
    """The simulated clock, each merchant's business date and the next jobs."""

    BORDER_TITLE = N_("Clock and calendar")

    def on_mount(self) -> None:
        """Translate the title."""
        self.border_title = _(self.BORDER_TITLE)

    def show(self, view: Mapping[str, Any] | None,
             merchants: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Render a ``GET /clock`` answer and, per merchant calendar, the coming days."""
        if not view:
            self.update(_("clock: unknown"))
            return
        now = clock_text(str(view.get("now", "")))
        mode = str(view.get("mode", "?"))
        title = {"simulated": _("simulated clock  {now} UTC"),
                 "real": _("real clock  {now} UTC")}.get(mode, mode + "  {now} UTC")
        lines = [Text(title.format(now=now), style="bold")]
        for mid, day in (view.get("business_dates") or {}).items():
            lines.append(Text(_("{mid}: business date {day}").format(mid=mid, day=day)))
        pending = list(view.get("pending_events") or [])
        cutoff = next((e for e in pending if str(e.get("key", "")).startswith("cutoff:")), None)
        lines.append(Text(_("next cut-off: {at}").format(
            at=clock_text(str(cutoff["at"])) if cutoff else "-"), style="bold"))
        for event in pending[:4]:
            lines.append(Text(f"  {clock_text(str(event.get('at')))}  {event.get('key')}"))
        shown: set[tuple[str, str]] = set()
        for merchant in (merchants or {}).values():
            where = (str(merchant.get("country")), str(merchant.get("timezone")))
            days = calendar_days(merchant, str(view.get("now", "")))
            if where in shown or not days:
                continue
            shown.add(where)
            lines.append(Text(_("calendar {country} ({zone})").format(country=where[0],
                                                                       zone=where[1]),
                              style="bold"))
            for day in days:
                lines.append(Text(f"  {day.weekday} {day.day:%m-%d}  {day.label}",
                                  style="" if day.business else "yellow"))
        lines.append(Text(_("h +1 hour   c next cut-off   d +1 business day"), style="dim"))
        self.update(Group(*lines))


class ReviewsPanel(DataTable[str]):
    """Refunds held for review: approve (a) or reject (r) the highlighted one."""

    BORDER_TITLE = N_("Reviews")

    def on_mount(self) -> None:
        """Set the columns."""
        self.border_title = _(self.BORDER_TITLE)
        self.cursor_type = "row"
        self.add_columns(_("id"), _("RRN"), _("amount"), _("approvals"), _("state"), _("card"))

    def show(self, reviews: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows, keeping the cursor on the same review where possible."""
        keep = self.selected_id
        self.clear()
        for r in reviews:
            self.add_row(str(r["id"]), str(r.get("rrn") or ""),
                         money(r.get("amount_minor"), r.get("currency")),
                         _("{got} of {needed}").format(got=len(r.get("approved_by") or []),
                                                       needed=r.get("approvals_needed")),
                         review_state(str(r.get("state"))), str(r.get("pan") or ""),
                         key=str(r["id"]))
        if keep is not None and keep in [str(r["id"]) for r in reviews]:
            self.move_cursor(row=self.get_row_index(keep))

    @property
    def selected_id(self) -> str | None:
        """The highlighted review's id."""
        if not self.row_count:
            return None
        return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)


class FieldsScreen(ModalScreen[None]):
    """One message field by field (PAN masked, secrets hidden); Esc closes."""

    BINDINGS = [Binding("escape,enter,q", "dismiss", N_("close"))]

    def __init__(self, rung: Rung) -> None:
        super().__init__()
        translate_bindings(self)
        self.rung = rung

    def compose(self) -> ComposeResult:
        """A title line and the field table."""
        with Vertical(id="fields-box"):
            note = _("  recorded by the host before this console attached") \
                if self.rung.recorded else ""
            yield Label(f"{self.rung.arrow}  {self.rung.mti} {kind_word(self.rung.txn_type)}  "
                        f"{self.rung.amount}  " + _("(Esc to close)") + note, id="fields-title")
            table: DataTable[str] = DataTable(id="fields-table", cursor_type="row")
            table.add_columns(_("field"), _("name"), _("value"), _("meaning"))
            for key, name, value, meaning in self.rung.fields:
                table.add_row(key, name, value, meaning)
            yield table


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (an approver's name, a reason); Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", N_("cancel"))]

    def __init__(self, question: str) -> None:
        super().__init__()
        translate_bindings(self)
        self.question = question

    def compose(self) -> ComposeResult:
        """The question and the input."""
        with Vertical(id="prompt-box"):
            yield Label(self.question)
            yield Input(id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Answer with the text typed."""
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        """Answer nothing."""
        self.dismiss(None)
