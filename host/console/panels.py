"""The console's panels and dialogs: each renders a piece of :mod:`host.console.model`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, Static

from host.console.model import (
    CURRENT,
    DONE,
    FAILED,
    SKIPPED,
    Rung,
    Stage,
    TAccount,
    calendar_days,
    money,
)

T_WIDTH = 36
"""Columns one T-account takes (two fit side by side at 80 columns)."""
MARKS = {DONE: "✔", CURRENT: "▶", FAILED: "✖", SKIPPED: "–"}


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

    BORDER_TITLE = "Message ladder"

    def on_mount(self) -> None:
        """Set the columns."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        # Fixed-format columns get their width up front: a width grown from the rows can lag a
        # burst of rows (seen as an RRN cut to three characters), and these never vary.
        for label, width in (("time", 8), ("", 7), ("MTI", 4), ("type", None), ("amount", None),
                             ("RC", 2), ("rule", None), ("TID / STAN", 17), ("RRN", 12)):
            self.add_column(label, width=width)

    def add_rung(self, rung: Rung) -> None:
        """Append one message and keep the newest in view."""
        follow = self.cursor_row >= self.row_count - 1
        self.add_row(time_text(rung.at), rung.arrow, rung.mti, rung.txn_type, rung.amount,
                     Text(rung.rc, style="bold green" if rung.rc == "00" else "bold red")
                     if rung.rc else "", rung.rule, f"{rung.tid} / {rung.stan}", rung.rrn,
                     key=str(rung.id))
        if follow:
            self.move_cursor(row=self.row_count - 1)


class BoardPanel(Static):
    """The refund life cycle of the selected sale, one line per stage."""

    BORDER_TITLE = "Refund life cycle"

    def show(self, rrn: str | None, stages: Sequence[Stage], note: str = "") -> None:
        """Render ``stages`` of the sale ``rrn``."""
        if rrn is None:
            self.update("Select a sale or refund on the ladder (↑↓) to follow its refund.")
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
        self.update(Group(Text(f"sale {rrn}" + (f"  {note}" if note else ""), style="bold"),
                          table))


def t_account(acct: TAccount) -> RenderableType:
    """One T-account: debits left of the stem, credits right, the balance in the title."""
    net = acct.balance_minor
    balance = f"{money(abs(net), acct.currency)} {'Dr' if net > 0 else 'Cr' if net < 0 else ''}"
    table = Table(title=f"{acct.account}  {balance.strip()}", title_style="bold",
                  box=box.MINIMAL, show_edge=False, width=T_WIDTH, padding=(0, 1))
    table.add_column("Dr", justify="right", ratio=1)
    table.add_column("Cr", justify="left", ratio=1)
    debits, credits = acct.debits, acct.credits
    if acct.opening_minor:
        opening = f"b/f {money(abs(acct.opening_minor), acct.currency)}"
        table.add_row(*((opening, "") if acct.opening_minor > 0 else ("", opening)))
    for n in range(max(len(debits), len(credits))):
        left = debits[n] if n < len(debits) else None
        right = credits[n] if n < len(credits) else None
        table.add_row(f"{left.kind} {money(left.amount_minor, acct.currency)}" if left else "",
                      f"{money(right.amount_minor, acct.currency)} {right.kind}" if right else "")
    return table


class LedgerPanel(Static):
    """Ledger postings as T-accounts with running balances, and the hash chain's status."""

    BORDER_TITLE = "Ledger"

    def show(self, accounts: Iterable[TAccount], chain: str) -> None:
        """Render the accounts and the chain status line."""
        style = "bold green" if chain.startswith("verified") else \
            "bold red" if chain.startswith("BROKEN") else "yellow"
        parts: list[RenderableType] = [Text(f"hash chain: {chain}", style=style)]
        tables = [t_account(a) for a in accounts]
        parts.append(Columns(tables) if tables else Text("no postings yet"))
        self.update(Group(*parts))


class ClockPanel(Static):
    """The simulated clock, each merchant's business date and the next jobs."""

    BORDER_TITLE = "Clock and calendar"

    def show(self, view: Mapping[str, Any] | None,
             merchants: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Render a ``GET /clock`` answer and, per merchant calendar, the coming days."""
        if not view:
            self.update("clock: unknown")
            return
        now = clock_text(str(view.get("now", "")))
        lines = [Text(f"{view.get('mode', '?')} clock  {now} UTC", style="bold")]
        for mid, day in (view.get("business_dates") or {}).items():
            lines.append(Text(f"{mid}: business date {day}"))
        pending = list(view.get("pending_events") or [])
        cutoff = next((e for e in pending if str(e.get("key", "")).startswith("cutoff:")), None)
        lines.append(Text(f"next cut-off: {clock_text(str(cutoff['at'])) if cutoff else '-'}",
                          style="bold"))
        for event in pending[:4]:
            lines.append(Text(f"  {clock_text(str(event.get('at')))}  {event.get('key')}"))
        shown: set[tuple[str, str]] = set()
        for merchant in (merchants or {}).values():
            where = (str(merchant.get("country")), str(merchant.get("timezone")))
            days = calendar_days(merchant, str(view.get("now", "")))
            if where in shown or not days:
                continue
            shown.add(where)
            lines.append(Text(f"calendar {where[0]} ({where[1]})", style="bold"))
            for day in days:
                lines.append(Text(f"  {day.day:%a %m-%d}  {day.label}",
                                  style="" if day.business else "yellow"))
        lines.append(Text("h +1 hour   c next cut-off   d +1 business day", style="dim"))
        self.update(Group(*lines))


class ReviewsPanel(DataTable[str]):
    """Refunds held for review: approve (a) or reject (r) the highlighted one."""

    BORDER_TITLE = "Reviews"

    def on_mount(self) -> None:
        """Set the columns."""
        self.cursor_type = "row"
        self.add_columns("id", "RRN", "amount", "approvals", "state", "card")

    def show(self, reviews: Sequence[Mapping[str, Any]]) -> None:
        """Replace the rows, keeping the cursor on the same review where possible."""
        keep = self.selected_id
        self.clear()
        for r in reviews:
            self.add_row(str(r["id"]), str(r.get("rrn") or ""),
                         money(r.get("amount_minor"), r.get("currency")),
                         f"{len(r.get('approved_by') or [])} of {r.get('approvals_needed')}",
                         str(r.get("state")), str(r.get("pan") or ""), key=str(r["id"]))
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

    BINDINGS = [Binding("escape,enter,q", "dismiss", "close")]

    def __init__(self, rung: Rung) -> None:
        super().__init__()
        self.rung = rung

    def compose(self) -> ComposeResult:
        """A title line and the field table."""
        with Vertical(id="fields-box"):
            yield Label(f"{self.rung.arrow}  {self.rung.mti} {self.rung.txn_type}  "
                        f"{self.rung.amount}  (Esc to close)", id="fields-title")
            table: DataTable[str] = DataTable(id="fields-table", cursor_type="row")
            table.add_columns("field", "name", "value", "meaning")
            for key, name, value, meaning in self.rung.fields:
                table.add_row(key, name, value, meaning)
            yield table


class PromptScreen(ModalScreen[str | None]):
    """Ask for one line of text (an approver's name, a reason); Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str) -> None:
        super().__init__()
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
