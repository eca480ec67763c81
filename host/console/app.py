"""The host console: a Textual app attached to a running host's admin API and event stream.

Five panels -- message ladder, refund life cycle, ledger T-accounts, clock and calendar,
reviews. Under :data:`WIDE_COLUMNS` columns they are tabs (1-5 or the tab bar switch them);
wider, they sit side by side. Stream records update the model (:mod:`host.console.model`);
admin calls run in workers, and their failures are notifications, never tracebacks. A console
attached after traffic started puts the host's latest transactions on its ladder first
(:data:`BACKFILL`); the T-accounts start from the stream's opening balances.

Texts are in the language chosen with ``lang`` (``poslab-host console --lang``, see
:mod:`protocol.i18n`), from the catalogue the terminal uses.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.css.query import NoMatches
from textual.events import Resize
from textual.reactive import var
from textual.theme import Theme
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static, Tab, Tabs

from host.console.client import AdminApi, AdminApiError, StreamRecord
from host.console.model import ChainStatus, Ladder, Stage, TAccounts, refund_board
from host.console.panels import (
    BoardPanel,
    ClockPanel,
    FieldsScreen,
    LadderPanel,
    LedgerPanel,
    PromptScreen,
    ReviewsPanel,
    clock_text,
    translate_bindings,
)
from host.console.words import review_state
from protocol.i18n import N_, _, use

VERIFY_AFTER_S = 1.0
"""The chain is verified this long after the first of a burst of postings."""
WIDE_COLUMNS = 150
"""From this many columns the panels sit side by side instead of in tabs."""
BACKFILL = 50
"""Transactions (two messages each) read back onto the ladder when the console attaches."""
PANELS = (("ladder", N_("Ladder")), ("board", N_("Refund")), ("ledger", N_("Ledger")),
          ("clock", N_("Clock")), ("reviews", N_("Reviews")))
#: Textual's own footer entry (its command palette's key), translated with the console's keys.
TEXTUAL_WORDS = (N_("palette"),)
#: Words for the stream's state on the status line (``refused`` gets the HTTP status).
STREAM_STATES = {"connecting": N_("connecting"), "live": N_("live"),
                 "reconnecting": N_("reconnecting")}

PROJECTOR = Theme(name="projector", primary="#ffff00", secondary="#00ffff", accent="#ff8800",
                  foreground="#ffffff", background="#000000", surface="#000000",
                  panel="#202020", success="#00ff00", error="#ff3030", warning="#ffaa00",
                  dark=True)
"""High contrast for a projector: white and yellow on black."""


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def closing_safe(fn: F) -> F:
    """A worker body that ends quietly when the app closes under it (its panels are gone)."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except NoMatches:
            return None

    return run  # type: ignore[return-value]


class ConsoleApp(App[None]):
    """``poslab-host console``: watch and steer a running host."""

    CSS_PATH = Path(__file__).with_name("console.tcss")
    TITLE = N_("poslab host console")
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(str(n), f"panel('{name}')", label, show=False)
          for n, (name, label) in enumerate(PANELS, 1)),
        Binding("h", "advance('hours')", N_("+1 hour")),
        Binding("c", "cutoff", N_("next cut-off")),
        Binding("d", "advance('business_days')", N_("+1 business day")),
        Binding("a", "review('approve')", N_("approve")),
        Binding("r", "review('reject')", N_("reject")),
        Binding("v", "verify", N_("verify chain"), show=False),
        Binding("ctrl+q,q", "quit", N_("quit")),
    ]

    wide = var(False)
    panel = var("ladder")

    def __init__(self, api: AdminApi, *, theme_name: str = "default",
                 lang: str | None = None) -> None:
        """``lang``: one of :data:`protocol.i18n.LANGUAGES`; None keeps the process's."""
        if lang is not None:
            use(lang)
        super().__init__()
        translate_bindings(self)
        self.title = _(self.TITLE)
        self.api = api
        self.theme_name = theme_name
        self.ladder = Ladder()
        self.taccounts = TAccounts()
        self.chain = ChainStatus.unchecked()
        self.clock_view: dict[str, Any] | None = None
        self.merchants: dict[str, dict[str, Any]] = {}
        self.reviews: list[dict[str, Any]] = []
        self.selected: str | None = None
        self.board: list[Stage] = []
        self._board_rrns: set[str] = set()  # the selected sale and its refunds
        self._verify_timer: Timer | None = None
        self.stream_state = "connecting"
        self.backfilled = False
        self.changed = asyncio.Event()

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Status line, tab bar, the five panels, key hints."""
        yield Static(id="status")
        yield Tabs(*(Tab(f"{n} {_(label)}", id=f"tab-{name}")
                     for n, (name, label) in enumerate(PANELS, 1)), id="tabs")
        with Container(id="panels"):
            yield LadderPanel(id="ladder", classes="panel")
            yield BoardPanel(id="board", classes="panel")
            yield LedgerPanel(id="ledger", classes="panel")
            yield ClockPanel(id="clock", classes="panel")
            yield ReviewsPanel(id="reviews", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        """Theme, first layout, the stream and the first admin reads."""
        if self.theme_name == "projector":
            self.register_theme(PROJECTOR)
            self.theme = "projector"
            self.add_class("projector")
        self._layout()
        self.query_one(BoardPanel).show(None, [])
        self.query_one(LedgerPanel).show([], self.chain)
        self._status()
        self.follow_stream()
        self.refresh_clock()
        self.refresh_reviews()
        self.verify_chain()

    def on_resize(self, event: Resize) -> None:
        """Tabs under :data:`WIDE_COLUMNS` columns, side by side from there."""
        self.wide = event.size.width >= WIDE_COLUMNS

    def watch_wide(self) -> None:
        """Re-lay the panels."""
        self._layout()

    def watch_panel(self) -> None:
        """Show the chosen panel (in tabs mode)."""
        self._layout()

    def _layout(self) -> None:
        self.set_class(self.wide, "wide")
        try:
            self.query_one("#tabs").display = not self.wide
            for name, _ in PANELS:
                self.query_one(f"#{name}").display = self.wide or name == self.panel
        except NoMatches:  # a watcher before the panels are mounted: on_mount lays them out
            return

    def action_panel(self, name: str) -> None:
        """Switch to (or focus) a panel."""
        self.panel = name
        self.query_one(Tabs).active = f"tab-{name}"
        widget = self.query_one(f"#{name}", Widget)
        if widget.can_focus:
            widget.focus()

    @on(Tabs.TabActivated)
    def _tab(self, event: Tabs.TabActivated) -> None:
        if event.tab.id:
            self.panel = event.tab.id.removeprefix("tab-")

    def _status(self) -> None:
        now = clock_text(str((self.clock_view or {}).get("now", "")))
        state = self.stream_state
        stream = _(STREAM_STATES[state]) if state in STREAM_STATES else \
            _("refused ({status})").format(status=state.removeprefix("refused (").rstrip(")"))
        self.query_one("#status", Static).update(
            _(" {url}   stream: {stream}   clock: {now}   chain: {chain}").format(
                url=self.api.url, stream=stream, now=now or "?", chain=self.chain.text))

    def _changed(self) -> None:
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> None:
        """Return once ``predicate()`` holds (checked after each state change), or raise
        TimeoutError after ``timeout_s``."""
        async def watch() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(watch(), timeout_s)

    # -- the stream ----------------------------------------------------------------------------

    @work(exclusive=True, group="stream")
    @closing_safe
    async def follow_stream(self) -> None:
        """Apply every stream record as it comes."""
        try:
            async for record in self.api.events():
                self.apply(record)
        except AdminApiError as exc:
            self.stream_state = f"refused ({exc.status})"
            self.notify(exc.message, severity="error", timeout=30)
            self._status()
            self._changed()

    def apply(self, record: StreamRecord) -> None:
        """Update the model and panels for one record."""
        data, kind = record.data, record.type
        self.stream_state = "reconnecting" if kind == "disconnected" else "live"
        if kind == "hello":
            self.taccounts.hello(data.get("balances") or {}, int(data.get("ledger_head") or 0))
            self.merchants = dict(data.get("merchants") or {})
            self._show_ledger()
            self.refresh_clock()
            self.refresh_reviews()
            if not self.backfilled:
                self.backfill_ladder()
        elif kind == "message" and record.id is not None:
            self.query_one(LadderPanel).add_rung(self.ladder.add(record.id, data))
        elif kind == "posting":
            if self.taccounts.post(data):
                self._show_ledger()
                self._verify_soon()
        elif kind == "stage":
            if str(data.get("stage", "")).startswith("review_"):
                self.refresh_reviews()
            self._follow(data.get("rrn"), data.get("original_rrn"))
        elif kind in ("settlement", "notification"):
            self._follow(data.get("rrn"), None, always=kind == "settlement")
        elif kind == "clock":
            self.refresh_clock()
            self._follow(None, None, always=True)
        self._status()
        self._changed()

    def _follow(self, rrn: Any, original: Any, always: bool = False) -> None:
        """Reload the board when an event touches the selected sale (or its refunds)."""
        if self.selected is not None and (always or self.selected in (rrn, original)
                                          or rrn in self._board_rrns):
            self.load_board(self.selected)

    def _verify_soon(self) -> None:
        """Check the chain once postings pause: a verification reads the whole ledger, so a
        burst of postings asks for one, not one each."""
        if self._verify_timer is None:
            self._verify_timer = self.set_timer(VERIFY_AFTER_S, self._verify_due)

    def _verify_due(self) -> None:
        self._verify_timer = None
        self.verify_chain()

    def _show_ledger(self) -> None:
        self.query_one(LedgerPanel).show(self.taccounts.ordered(), self.chain)

    # -- admin reads ---------------------------------------------------------------------------

    @work(exclusive=True, group="backfill")
    @closing_safe
    async def backfill_ladder(self) -> None:
        """Put the host's latest :data:`BACKFILL` transactions on the ladder, before the
        messages the stream brought since the console attached (read after the stream's
        ``hello``, so nothing falls between the two)."""
        try:
            page = await self.api.call("GET", f"/transactions?limit={BACKFILL}")
        except AdminApiError as exc:
            self.notify(_("ladder history: {message}").format(message=exc.message),
                        severity="warning")
            return
        self.backfilled = True
        if self.ladder.backfill(page.get("transactions") or []):
            self.query_one(LadderPanel).show_all(self.ladder.rungs)
        self._changed()

    @work(exclusive=True, group="clock")
    @closing_safe
    async def refresh_clock(self) -> None:
        """Read ``GET /clock``."""
        try:
            self.clock_view = await self.api.call("GET", "/clock")
        except AdminApiError as exc:
            self.notify(_("clock: {message}").format(message=exc.message), severity="warning")
            return
        self.query_one(ClockPanel).show(self.clock_view, self.merchants)
        self._status()
        self._changed()

    @work(exclusive=True, group="reviews")
    @closing_safe
    async def refresh_reviews(self) -> None:
        """Read ``GET /reviews`` (pending first, then the latest decided)."""
        try:
            data = await self.api.call("GET", "/reviews")
        except AdminApiError as exc:
            self.notify(_("reviews: {message}").format(message=exc.message), severity="warning")
            return
        rows = list(data.get("reviews") or [])
        rows.sort(key=lambda r: (r.get("state") != "pending_review", -int(r.get("id", 0))))
        self.reviews = rows
        self.query_one(ReviewsPanel).show(rows)
        self._changed()

    @work(exclusive=True, group="verify")
    @closing_safe
    async def verify_chain(self) -> None:
        """Read ``GET /ledger/verify`` into the chain status."""
        try:
            report = await self.api.call("GET", "/ledger/verify")
        except AdminApiError as exc:
            self.chain = ChainStatus.unknown(exc.message)
        else:
            self.chain = ChainStatus.from_report(report)
        self._show_ledger()
        self._status()
        self._changed()

    @on(DataTable.RowHighlighted, "#ladder")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        rung = self.ladder.by_id(int(event.row_key.value or 0))
        if rung is not None and rung.rrn and rung.txn_type in ("sale", "refund", "void"):
            if rung.rrn not in self._board_rrns or self.selected is None:
                self.load_board(rung.rrn)

    @on(DataTable.RowSelected, "#ladder")
    def _open_fields(self, event: DataTable.RowSelected) -> None:
        rung = self.ladder.by_id(int(event.row_key.value or 0))
        if rung is not None:
            self.push_screen(FieldsScreen(rung))

    @work(exclusive=True, group="board")
    @closing_safe
    async def load_board(self, rrn: str) -> None:
        """Read the sale of ``rrn`` (or of the refund ``rrn``), its latest refund and that
        refund's notifications, and show the board."""
        try:
            txn = await self.api.call("GET", f"/transactions/{rrn}")
            sale = txn
            if txn.get("kind") == "refund" and txn.get("original_rrn"):
                sale = await self.api.call("GET", f"/transactions/{txn['original_rrn']}")
            refunds = list(sale.get("refunds") or [])
            refund = None
            if txn.get("kind") == "refund":
                refund = txn
            elif refunds:
                refund = await self.api.call("GET", f"/transactions/{refunds[-1]['rrn']}")
            notes: list[dict[str, Any]] = []
            if refund is not None and refund.get("rrn"):
                try:
                    answer = await self.api.call("GET", f"/notifications?rrn={refund['rrn']}")
                    notes = list(answer.get("notifications") or [])
                except AdminApiError:
                    notes = []  # a host without notifications: that stage stays waiting
        except AdminApiError as exc:
            self.notify(_("transaction {rrn}: {message}").format(rrn=rrn, message=exc.message),
                        severity="warning")
            return
        self.selected = str(sale.get("rrn"))
        self._board_rrns = {self.selected, *(str(r.get("rrn")) for r in refunds)}
        self.board = refund_board(sale, refund, notes)
        note = _("refund {rrn}").format(rrn=refund.get("rrn")) if refund is not None else ""
        self.query_one(BoardPanel).show(self.selected, self.board, note)
        self._changed()

    # -- commands ------------------------------------------------------------------------------

    @work(exclusive=True, group="command")
    @closing_safe
    async def action_advance(self, unit: str) -> None:
        """Advance the simulated clock by one hour or one business day."""
        await self._command("POST", "/clock/advance", {unit: 1})

    @work(exclusive=True, group="command")
    @closing_safe
    async def action_cutoff(self) -> None:
        """Move the simulated clock to the next cut-off."""
        try:
            view = await self.api.call("GET", "/clock")
        except AdminApiError as exc:
            self.notify(exc.message, severity="error")
            return
        cutoff = next((e for e in view.get("pending_events") or []
                       if str(e.get("key", "")).startswith("cutoff:")), None)
        if cutoff is None:
            self.notify(_("no cut-off is scheduled"), severity="warning")
            return
        await self._command("POST", "/clock/set", {"instant": cutoff["at"]})

    async def _command(self, method: str, path: str, body: Any) -> Any:
        try:
            answer = await self.api.call(method, path, body)
        except AdminApiError as exc:
            self.notify(exc.message, severity="error")
            return None
        if path.startswith("/clock"):
            self.clock_view = answer
            self.query_one(ClockPanel).show(answer, self.merchants)
            self._status()
            self._changed()
        return answer

    @work(exclusive=True, group="command")
    @closing_safe
    async def action_review(self, action: str) -> None:
        """Approve or reject the highlighted review (asks who, and for a rejection why)."""
        review_id = self.query_one(ReviewsPanel).selected_id
        if review_id is None:
            self.notify(_("no review to decide"), severity="warning")
            return
        approver = await self.push_screen_wait(
            PromptScreen(_("Review {id}: your name").format(id=review_id)))
        if not approver:
            return
        body: dict[str, str] = {"approver": approver}
        if action == "reject":
            reason = await self.push_screen_wait(
                PromptScreen(_("Why reject review {id}?").format(id=review_id)))
            if not reason:
                return
            body["reason"] = reason
        answer = await self._command("POST", f"/reviews/{review_id}/{action}", body)
        if isinstance(answer, dict):
            self.notify(_("review {id}: {state} ({got} of {needed} approvals)").format(
                id=review_id, state=review_state(str(answer.get("state"))),
                got=len(answer.get("approved_by") or []), needed=answer.get("approvals_needed")))
            self.refresh_reviews()

    def action_verify(self) -> None:
        """Check the hash chain now."""
        self.verify_chain()

    async def action_quit(self) -> None:
        """Close the admin client and leave."""
        await self.api.close()
        self.exit()
