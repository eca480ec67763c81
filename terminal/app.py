"""The Textual app: renders the flow's state, routes keys to flow events, runs network work
in workers. It knows no ISO 8583: requests are built by :mod:`terminal.engine`.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    Button,
    ContentSwitcher,
    DataTable,
    Footer,
    Input,
    OptionList,
    RichLog,
    Static,
)
from textual.widgets.option_list import Option

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from terminal import flow, inspector, receipt
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.engine import Clock, Engine
from terminal.flow import FlowState, Outcome, Step
from terminal.journal import Journal, TxnKind
from terminal.link import Link, LinkError, Traffic
from terminal.screens import (
    JournalScreen,
    SettingsScreen,
    SettlementScreen,
    TotalsScreen,
    money_text,
)
from terminal.widgets import AmountDisplay, Keypad, ReceiptView, StatusLine

MENU = (("sale", "Sale"), ("refund", "Refund"), ("void", "Void"), ("settle", "Settlement"),
        ("journal", "Journal / Reprint"), ("totals", "Batch totals"), ("settings", "Settings"),
        ("inspector", "Message inspector"))
MODES = {"s": EntryMode.SWIPE, "i": EntryMode.CHIP, "t": EntryMode.CONTACTLESS,
         "m": EntryMode.MANUAL}
_MODE_NAMES = {EntryMode.SWIPE: "swipe", EntryMode.CHIP: "insert",
               EntryMode.CONTACTLESS: "tap", EntryMode.MANUAL: "manual"}
HINTS = {
    Step.MENU: "1-8 or ↑↓ Enter: choose   F2 messages   Ctrl+Q quit",
    Step.ORIGINAL: "↑↓ Enter: choose   R: key in an RRN   Esc: cancel",
    Step.AMOUNT: "0-9 amount   Backspace delete   Del clear   Enter OK   Esc cancel",
    Step.REASON: "1-5 or ↑↓ Enter: choose   Esc: cancel",
    Step.CARD: "↑↓ card, then S swipe  I insert  T tap  M manual (Enter = insert)   Esc cancel",
    Step.CONFIRM: "Enter: confirm   Esc: cancel",
    Step.SUPERVISOR: "Type the supervisor password, Enter   Esc: cancel",
    Step.SENDING: "Please wait",
    Step.RESULT: "Enter: done   C: customer copy   M: merchant copy",
}


@dataclass
class TrafficSeen(Message):
    """A message crossed the wire."""

    item: Traffic


@dataclass
class TxnFinished(Message):
    """The engine finished a transaction."""

    outcome: Outcome


class PosApp(App[None]):
    """poslab's countertop terminal."""

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "poslab terminal"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
        Binding("f2", "inspector", "Messages"),
        Binding("f5", "reconnect", "Reconnect"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    state: var[FlowState] = var(FlowState, always_update=True)
    link_state: var[str] = var("CONNECTING")

    def __init__(self, config: TerminalConfig, deck: list[Card] | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__()
        self.config = config
        self.deck = deck if deck is not None else load_deck()
        self.journal = Journal(config.data_dir)
        self.link = Link(config.host, config.port, Codec(config.profile),
                         config.timeout_s_connect)
        self.link.listeners.append(self._traffic)
        self.engine = (Engine(config, self.journal, self.link, clock) if clock
                       else Engine(config, self.journal, self.link))
        self.traffic: list[Traffic] = []
        self.offline_reason = ""
        self.copy = receipt.Copy.MERCHANT
        self._ticker: Timer | None = None
        self._deadline = 0.0
        self._originals: dict[str, flow.Original] = {}
        self._mounted = False
        self.set_reactive(PosApp.state, FlowState(policy=flow.Policy(
            config.currency, config.supervisor_password, config.supervisor_for_refund,
            config.supervisor_for_void)))

    def apply_config(self, config: TerminalConfig) -> None:
        """Use changed settings from now on (the flow's policy and the engine's timeouts)."""
        self.config = config
        self.engine.config = config
        self.state = replace(self.state, policy=flow.Policy(
            config.currency, config.supervisor_password, config.supervisor_for_refund,
            config.supervisor_for_void))

    def run(self, *args: Any, loop: asyncio.AbstractEventLoop | None = None,
            **kwargs: Any) -> None:
        """Run on the shared loop unless told otherwise (docs/design-notes.md)."""
        from terminal.runtime import install

        return super().run(*args, loop=loop or install(), **kwargs)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Status line, the flow's panels, the inspector pane and the key hints."""
        yield StatusLine(id="status")
        with Vertical(id="main"):
            yield Static("", id="prompt", markup=False)
            with ContentSwitcher(initial="menu", id="panels"):
                with Horizontal(id="menu"):
                    with Vertical(id="menu-left"):
                        yield OptionList(*[Option(f"{i}  {label}", id=key)
                                           for i, (key, label) in enumerate(MENU, start=1)],
                                         id="menu-list")
                        yield Static("", id="menu-note", markup=False)
                    yield Static(self._guide(), id="guide")
                with Vertical(id="original"):
                    yield DataTable(id="original-table", cursor_type="row")
                    yield Input(placeholder="original RRN (R to type one)", id="rrn-input",
                                restrict=r"[0-9A-Za-z]*", max_length=12)
                with Horizontal(id="amount"):
                    with Vertical(id="amount-left"):
                        yield Static("", id="amount-context")
                        yield AmountDisplay("0.00", id="amount-display")
                        yield Static(self.config.currency, id="amount-currency")
                    yield Keypad(id="keypad")
                yield OptionList(*[Option(f"{i}  {r.label}", id=r.value)
                                   for i, r in enumerate(RefundReason, start=1)], id="reason")
                with Vertical(id="card"):
                    yield OptionList(*[Option(f"{c.name:<26} {c.masked}  {c.outcome}",
                                              id=str(i)) for i, c in enumerate(self.deck)],
                                     id="card-list")
                    with Horizontal(id="card-modes"):
                        for key, mode in MODES.items():
                            button = Button(f"{key.upper()} {_MODE_NAMES[mode]}",
                                            id=f"mode-{key}", classes="mode")
                            button.can_focus = False
                            yield button
                yield Static("", id="confirm", markup=False)
                with Vertical(id="supervisor"):
                    yield Input(password=True, id="password", placeholder="password")
                yield Static("", id="sending")
                with Horizontal(id="result"):
                    with Vertical(id="result-left"):
                        yield Static("", id="result-title")
                        yield Static("", id="result-detail", markup=False)
                    yield ReceiptView(id="result-receipt")
            yield Static("", id="hint")
        yield RichLog(id="inspector", wrap=False, markup=False, highlight=False)
        yield Footer()

    def _guide(self) -> str:
        password = self.config.supervisor_password
        shown = password if password == TerminalConfig().supervisor_password else "****"
        return ("QUICK START\n\n"
                "Sale: 1, type 1250 for 12.50,\n  Enter, then I to insert the\n"
                "  highlighted card.\n\n"
                "Refund: 2, Enter on the sale,\n  Enter (amount = what is left)\n"
                f"  4 (return), I, password {shown}.\n\n"
                "Try the other cards (↑↓ on the\ncard list) for declines and a\n"
                "host that never answers.")

    def on_mount(self) -> None:
        """Show the menu, then connect and sign on."""
        self._mounted = True
        self.query_one("#inspector").display = False
        self.refresh_status()
        self.watch_state(self.state)
        self.sign_on()
        if self.config.echo_interval_s > 0:
            self.set_interval(self.config.echo_interval_s, self.echo)

    # -- link --------------------------------------------------------------------------------

    @work(exclusive=True, group="link")
    async def sign_on(self) -> None:
        """Connect and sign on; the status line tells how it went."""
        self.link_state = "CONNECTING"
        try:
            resp = await self.engine.sign_on()
        except LinkError as exc:
            self.offline_reason = str(exc)
            self.link_state = "OFFLINE"
            self.notify(str(exc), title="Host unreachable", severity="error", timeout=8)
            return
        self.offline_reason = "" if resp.approved else f"sign-on refused: {resp.response_code}"
        self.link_state = "ONLINE" if resp.approved else "SIGN-ON REFUSED"

    @work(exclusive=True, group="echo")
    async def echo(self) -> None:
        """Echo test on the timer."""
        if self.link_state == "CONNECTING":
            return
        try:
            resp = await self.engine.echo()
        except LinkError as exc:
            self.offline_reason = str(exc)
            self.link_state = "OFFLINE"
            return
        self.link_state = "ONLINE" if resp.approved else "SIGN-ON REFUSED"

    def watch_link_state(self, _: str) -> None:
        """Redraw the status line."""
        self.refresh_status()

    def refresh_status(self) -> None:
        """Ids, batch, business date and link state."""
        mark = {"ONLINE": "● ONLINE", "OFFLINE": "✖ OFFLINE"}.get(self.link_state,
                                                                 f"… {self.link_state}")
        if not self._mounted or not self.query("#menu-note"):
            return  # a late echo or sign-on result while the app shuts down
        self.query_one(StatusLine).show(self.config.terminal_id, self.config.merchant_id,
                                        self.journal.batch_number, self.journal.business_date,
                                        mark)
        note = self.query_one("#menu-note", Static)
        if self.link_state == "OFFLINE":
            note.update(f"{self.offline_reason}\nPress F5 to try again.")
        else:
            note.update(f"{len(self.journal)} journal lines  ·  "
                        f"{len(self.journal.pending_reversals())} reversals pending")

    def _traffic(self, item: Traffic) -> None:
        self.post_message(TrafficSeen(item))

    def action_reconnect(self) -> None:
        """Connect and sign on again."""
        self.sign_on()

    def on_traffic_seen(self, message: TrafficSeen) -> None:
        """Log a message in the inspector."""
        self.traffic.append(message.item)
        found = self.query("#inspector").results(RichLog)
        log = next(iter(found), None)
        if log is None:
            return  # traffic while the app shuts down
        for line in inspector.render(message.item):
            log.write(line)
        log.write("")

    def action_inspector(self) -> None:
        """Show or hide the message inspector."""
        pane = self.query_one("#inspector")
        pane.display = not pane.display

    # -- the flow ----------------------------------------------------------------------------

    def dispatch(self, event: flow.Event) -> None:
        """Feed an event to the flow and run what it asks for."""
        self.state, effects = flow.step(self.state, event)
        for effect in effects:
            self.transmit(effect.draft)

    @work(exclusive=True, group="txn")
    async def transmit(self, draft: flow.Draft) -> None:
        """Send a draft through the engine."""
        try:
            outcome = await self.engine.transact(draft)
        except Exception as exc:  # noqa: BLE001 - the screen must never show a traceback
            outcome = Outcome("failed", "NOT COMPLETED", f"Internal error: {exc}")
        self.post_message(TxnFinished(outcome))

    def on_txn_finished(self, message: TxnFinished) -> None:
        """Show the outcome."""
        self.dispatch(flow.Finished(message.outcome))
        if message.outcome.status == "failed" and "HOST OFFLINE" in message.outcome.title:
            self.link_state = "OFFLINE"
            self.offline_reason = message.outcome.detail
        elif message.outcome.status != "failed":
            self.link_state = "ONLINE" if message.outcome.status != "no_response" else \
                self.link_state
        self.refresh_status()

    def watch_state(self, state: FlowState) -> None:
        """Render the flow's current step."""
        if not self._mounted or not self.query("#panels"):
            return  # not built yet, or shutting down
        switcher = self.query_one("#panels", ContentSwitcher)
        entering = switcher.current != state.step.value
        switcher.current = state.step.value
        self.query_one("#prompt", Static).update(self._prompt(state))
        hint = HINTS[state.step]
        if state.step is Step.SUPERVISOR and self.config.supervisor_password == "0000":
            hint = "Type the supervisor password (demo default 0000), Enter   Esc: cancel"
        self.query_one("#hint", Static).update(hint)
        render = getattr(self, f"_render_{state.step.value}", None)
        if render is not None:
            render(state, entering)
        if state.step is not Step.SENDING and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def _prompt(self, state: FlowState) -> str:
        kind = f"{state.kind.heading}  " if state.kind else ""
        return f"{kind}{state.message or 'Main menu'}"

    def _render_menu(self, state: FlowState, entering: bool) -> None:
        if entering:
            self.query_one("#menu-list", OptionList).focus()
        self.refresh_status()

    def _render_original(self, state: FlowState, entering: bool) -> None:
        if not entering:
            return
        table = self.query_one("#original-table", DataTable)
        table.clear(columns=True)
        table.add_columns("Date", "Type", "Card", "Amount", "RRN", "Left")
        rrn_input = self.query_one("#rrn-input", Input)
        rrn_input.value = ""
        rrn_input.display = state.kind is TxnKind.REFUND
        rows = (self.journal.refundable() if state.kind is TxnKind.REFUND
                else self.journal.voidable())
        self._originals = {}
        cur = self.config.currency
        for txn in rows:
            left = self.journal.remaining_minor(txn) if txn.kind is TxnKind.SALE else None
            self._originals[str(txn.seq)] = flow.Original(
                txn.rrn or "", txn.kind, txn.amount_minor, left, txn.masked_pan,
                txn.card_name)
            table.add_row(txn.local_time[5:16].replace("T", " "), txn.kind.heading,
                          txn.masked_pan or "-", money_text(txn.amount_minor, cur), txn.rrn,
                          money_text(left, cur), key=str(txn.seq))
        table.focus()
        empty = "  (none in the journal"
        empty += ": press R to key in an RRN)" if state.kind is TxnKind.REFUND else ")"
        self.query_one("#prompt", Static).update(self._prompt(state) + ("" if rows else empty))

    def _render_amount(self, state: FlowState, entering: bool) -> None:
        self.query_one(AmountDisplay).show(state.amount)
        context = ""
        orig = state.original
        if orig is not None:
            context = (f"Original {orig.rrn}  {orig.masked_pan or ''}\n"
                       f"Sale {money_text(orig.amount_minor, self.config.currency)}  ·  "
                       f"refundable {money_text(orig.remaining_minor, self.config.currency)}")
        self.query_one("#amount-context", Static).update(context)
        if entering:
            self.set_focus(None)

    def _render_reason(self, state: FlowState, entering: bool) -> None:
        if entering:
            self.query_one("#reason", OptionList).focus()

    def _render_card(self, state: FlowState, entering: bool) -> None:
        if not entering:
            return
        cards = self.query_one("#card-list", OptionList)
        cards.highlighted = 0
        pan = state.original.masked_pan if state.original else None
        for i, card in enumerate(self.deck):
            if pan and card.masked == pan:
                cards.highlighted = i
        cards.focus()

    def _render_confirm(self, state: FlowState, entering: bool) -> None:
        orig = state.original
        assert orig is not None
        self.query_one("#confirm", Static).update(
            f"VOID the {orig.kind.value} {orig.rrn}\n\nCard    {orig.masked_pan or '-'}\n"
            f"Amount  {self.config.currency} {state.amount.format()}\n\nPress Enter to "
            "confirm.")
        if entering:
            self.set_focus(None)

    def _render_supervisor(self, state: FlowState, entering: bool) -> None:
        box = self.query_one("#password", Input)
        box.value = ""
        box.focus()

    def _render_sending(self, state: FlowState, entering: bool) -> None:
        if entering:
            self._deadline = time.monotonic() + self.config.timeout_s_response
            self._tick()
            self._ticker = self.set_interval(0.2, self._tick)
            self.set_focus(None)

    def _tick(self) -> None:
        left = self._deadline - time.monotonic()
        if left > 0:
            text = (f"PROCESSING\n\nRequest sent to the host.\nWaiting for the answer: "
                    f"{math.ceil(left)} s")
        else:
            text = "NO ANSWER\n\nSending a reversal to the host …"
        self.query_one("#sending", Static).update(text)

    def _render_result(self, state: FlowState, entering: bool) -> None:
        outcome = state.outcome
        assert outcome is not None
        if entering:
            self.copy = receipt.Copy.MERCHANT
        title = self.query_one("#result-title", Static)
        title.update(outcome.title)
        title.set_classes(outcome.status)
        self.query_one("#result-detail", Static).update(outcome.detail)
        view = self.query_one("#result-receipt", ReceiptView)
        if outcome.txn_seq is not None:
            txn = self.journal.get(outcome.txn_seq)
            view.show(receipt.render(txn, self.copy, self.config.merchant_id,
                                     self.config.terminal_id))
        else:
            view.show([])
        view.display = outcome.txn_seq is not None
        if entering:
            self.set_focus(None)

    # -- input -------------------------------------------------------------------------------

    def on_key(self, event: Any) -> None:
        """Number and letter keys for the flow's steps (buttons and lists do the rest)."""
        if not isinstance(self.screen, Screen) or self.screen is not self.screen_stack[0]:
            return
        step, key, char = self.state.step, event.key, event.character or ""
        if step is Step.MENU and char.isdigit() and 1 <= int(char) <= len(MENU):
            self.choose(MENU[int(char) - 1][0])
        elif step is Step.AMOUNT:
            target = {"backspace": "back", "delete": "clear", "enter": "ok",
                      "c": "clear"}.get(key, char if char.isdigit() else "")
            if target:
                self.query_one(f"#key-{target}", Button).press()
                event.stop()
        elif step is Step.REASON and char.isdigit() and 1 <= int(char) <= len(RefundReason):
            self.dispatch(flow.PickReason(list(RefundReason)[int(char) - 1]))
        elif step is Step.CARD and key in MODES:
            self.present(MODES[key])
        elif step is Step.ORIGINAL and key == "r" and self.state.kind is TxnKind.REFUND:
            self.query_one("#rrn-input", Input).focus()
            event.stop()
        elif step in (Step.CONFIRM, Step.RESULT) and key == "enter":
            self.dispatch(flow.Enter())
        elif step is Step.RESULT and key in ("c", "m"):
            self.copy = receipt.Copy.CUSTOMER if key == "c" else receipt.Copy.MERCHANT
            self._render_result(self.state, False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Keypad and entry-mode buttons."""
        bid = event.button.id or ""
        if bid.startswith("key-"):
            key = bid[4:]
            special: dict[str, flow.Event] = {"back": flow.Backspace(), "clear": flow.Clear(),
                                              "ok": flow.Enter()}
            self.dispatch(special.get(key) or flow.Digit(key))
        elif bid.startswith("mode-"):
            self.present(MODES[bid[5:]])

    def present(self, mode: EntryMode) -> None:
        """Present the highlighted card in ``mode``."""
        index = self.query_one("#card-list", OptionList).highlighted or 0
        self.dispatch(flow.PresentCard(self.deck[index], mode))

    @on(OptionList.OptionSelected, "#menu-list")
    def _menu_selected(self, event: OptionList.OptionSelected) -> None:
        self.choose(event.option_id or "")

    @on(OptionList.OptionSelected, "#reason")
    def _reason_selected(self, event: OptionList.OptionSelected) -> None:
        self.dispatch(flow.PickReason(RefundReason(event.option_id or "other")))

    @on(OptionList.OptionSelected, "#card-list")
    def _card_selected(self, event: OptionList.OptionSelected) -> None:
        self.present(EntryMode.CHIP)

    @on(DataTable.RowSelected, "#original-table")
    def _original_selected(self, event: DataTable.RowSelected) -> None:
        original = self._originals.get(str(event.row_key.value))
        if original is not None:
            self.dispatch(flow.PickOriginal(original))

    @on(Input.Submitted, "#rrn-input")
    def _rrn_keyed(self, event: Input.Submitted) -> None:
        rrn = event.value.strip()
        if not rrn.isalnum() or len(rrn) > 12:
            self.notify("An RRN is up to 12 letters or digits", severity="warning")
            return
        known = self.journal.by_rrn(rrn)
        left = self.journal.remaining_minor(known) if known else None
        self.dispatch(flow.PickOriginal(flow.Original(
            rrn, TxnKind.SALE, known.amount_minor if known else None, left,
            known.masked_pan if known else None)))

    @on(Input.Submitted, "#password")
    def _password(self, event: Input.Submitted) -> None:
        self.dispatch(flow.Password(event.value))
        if self.state.step is Step.SUPERVISOR:
            self.query_one("#password", Input).value = ""

    def choose(self, key: str) -> None:
        """Run a menu item."""
        if key == "sale":
            self.dispatch(flow.Start(TxnKind.SALE))
        elif key == "refund":
            self.dispatch(flow.Start(TxnKind.REFUND))
        elif key == "void":
            self.dispatch(flow.Start(TxnKind.VOID))
        elif key == "settle":
            self.push_screen(SettlementScreen())
        elif key == "journal":
            self.push_screen(JournalScreen())
        elif key == "totals":
            self.push_screen(TotalsScreen())
        elif key == "settings":
            self.push_screen(SettingsScreen())
        elif key == "inspector":
            self.action_inspector()

    def action_cancel(self) -> None:
        """Escape: leave the current step."""
        if self.state.step is Step.ORIGINAL and self.focused is self.query_one("#rrn-input"):
            table = self.query_one("#original-table", DataTable)
            if table.row_count:
                table.focus()
                return
        self.dispatch(flow.Cancel())
