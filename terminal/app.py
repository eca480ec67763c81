"""The Textual app: renders the flow's state, routes keys to flow events, runs network work
in workers. It knows no ISO 8583: requests are built by :mod:`terminal.engine`.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from textual import events, on, work
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
    Input,
    OptionList,
    Static,
)
from textual.widgets.option_list import Option

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason, response_text
from terminal import flow, i18n, inspector, receipt, times
from terminal.cards import Card, load_deck
from terminal.config import TerminalConfig
from terminal.cup_driver import CupDriver
from terminal.cup_session import is_cup
from terminal.engine import Clock, Engine, SignOnRefused
from terminal.flow import FlowState, Outcome, Step
from terminal.i18n import N_, _
from terminal.journal import Journal, TxnKind
from terminal.link import Link, LinkError, Traffic
from terminal.screens import (
    JournalScreen,
    SettingsScreen,
    SettlementScreen,
    TotalsScreen,
    card_cell,
    money_text,
    plural,
)
from terminal.widgets import (
    FLOW_WIDTH,
    AmountDisplay,
    Keypad,
    MessagePane,
    PanePlace,
    ReceiptView,
    StatusLine,
    pane_place,
    status_text,
    translate_bindings,
)

MENU = (("sale", N_("Sale")), ("refund", N_("Refund")), ("void", N_("Void")),
        ("settle", N_("Settlement")), ("journal", N_("Journal / Reprint")),
        ("totals", N_("Batch totals")), ("settings", N_("Settings")),
        ("inspector", N_("Message inspector")))
MODES = {"s": EntryMode.SWIPE, "i": EntryMode.CHIP, "t": EntryMode.CONTACTLESS,
         "m": EntryMode.MANUAL}
_MODE_NAMES = {EntryMode.SWIPE: N_("swipe"), EntryMode.CHIP: N_("insert"),
               EntryMode.CONTACTLESS: N_("tap"), EntryMode.MANUAL: N_("manual")}
HINTS = {
    Step.MENU: N_("1-8 or ↑↓ Enter: choose   F2 messages   F5 reconnect   Ctrl+Q quit"),
    Step.ORIGINAL: N_("↑↓ Enter: choose   R: key in an RRN   Esc: cancel"),
    Step.ORIGINAL_DATE: N_("0-9 date MMDD   Backspace delete   Del clear   Enter OK   Esc cancel"),
    Step.AMOUNT: N_("0-9 amount   Backspace delete   Del clear   Enter OK   Esc cancel"),
    Step.REASON: N_("1-5 or ↑↓ Enter: choose   Esc: cancel"),
    Step.CARD: N_("↑↓ card, then S swipe  I insert  T tap  M manual (Enter = insert)   Esc cancel"),
    Step.PIN: N_("0-9 PIN   Backspace delete   Enter OK   Esc cancel"),
    Step.CONFIRM: N_("Enter: confirm   Esc: cancel"),
    Step.SUPERVISOR: N_("Type the supervisor password, Enter   Esc: cancel"),
    Step.SENDING: N_("Please wait"),
    Step.RESULT: N_("Enter: done   C: customer copy   M: merchant copy"),
}


#: The link states the status line shows (translated there).
LINK_STATES = (N_("ONLINE"), N_("OFFLINE"), N_("CONNECTING"), N_("SIGN-ON REFUSED"))
#: The titles the engine and session give outcomes (shown through :func:`outcome_title`).
OUTCOME_TITLES = (N_("APPROVED"), N_("NO RESPONSE"), N_("HOST OFFLINE"), N_("REVERSAL PENDING"),
                  N_("NOT COMPLETED"), N_("PIN NOT SENT"))


def outcome_title(outcome: Outcome) -> str:
    """The result screen's headline in the language in use: a decline carries its code and
    the code's meaning, other outcomes their (translated) title."""
    if outcome.status == "declined" and outcome.response_code:
        return _("DECLINED {code} {meaning}").format(
            code=outcome.response_code, meaning=i18n.meaning(response_text(outcome.response_code)))
    return _(outcome.title)


def policy_of(config: TerminalConfig, pin_entry: bool = False) -> flow.Policy:
    """The flow's rules for ``config``; ``pin_entry`` while the terminal holds a PIN key."""
    return flow.Policy(config.currency, config.supervisor_password,
                       config.supervisor_for_refund, config.supervisor_for_void, pin_entry,
                       original_date=is_cup(config.profile))


@dataclass
class TrafficSeen(Message):
    """A message crossed the wire."""

    item: Traffic


@dataclass
class TxnFinished(Message):
    """The engine finished a transaction."""

    outcome: Outcome


class _Body(Horizontal):
    """The flow and the message inspector; a new size may move the inspector."""

    def on_resize(self, event: events.Resize) -> None:
        """The window changed: place the inspector again."""
        app = self.app
        if isinstance(app, PosApp):
            app.place_pane()


class PosApp(App[None]):
    """poslab's countertop terminal."""

    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    TITLE = "poslab terminal"
    # The main screen's hint line names its keys; the footers of the other screens show
    # only their own keys, Esc and Ctrl+Q.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", N_("Back")),
        Binding("f2", "inspector", N_("Messages"), show=False),
        Binding("f5", "reconnect", N_("Reconnect"), show=False),
        Binding("ctrl+q", "quit", N_("Quit"), priority=True),
    ]

    state: var[FlowState] = var(FlowState, always_update=True)
    link_state: var[str] = var("CONNECTING")

    def __init__(self, config: TerminalConfig, deck: list[Card] | None = None,
                 clock: Clock | None = None) -> None:
        super().__init__()
        self.config = config
        i18n.use(config.lang)
        translate_bindings(self)
        self.deck = deck if deck is not None else load_deck()
        self.journal = Journal(config.data_dir)
        self.link = Link(config.host, config.port, Codec(config.profile),
                         config.timeout_s_connect, tls=config.tls)
        self.link.listeners.append(self._traffic)
        # The terminal's local time (DE12/DE13) is the merchant's, whatever the machine's zone.
        merchant_zone = times.zone(config.timezone)
        now = clock or (lambda: datetime.now(merchant_zone))
        #: the China UnionPay profile: sign-on batches, 0220 refunds, CUP settlement.
        self.cup = is_cup(config.profile)
        self.engine: Engine | CupDriver = (
            CupDriver(config, self.journal, self.link, now, self.deck) if self.cup
            else Engine(config, self.journal, self.link, now))
        self.traffic: list[Traffic] = []
        self.offline_reason = ""
        self.copy = receipt.Copy.MERCHANT
        self._ticker: Timer | None = None
        self._deadline = 0.0
        self._originals: dict[str, flow.Original] = {}
        self._mounted = False
        #: Whether the inspector shows, by where it goes; F2 flips the current one.
        self._pane_wanted = {PanePlace.BESIDE: True, PanePlace.BELOW: True,
                             PanePlace.COVER: False}
        self._focus_before_pane: Any = None
        self.set_reactive(PosApp.state, FlowState(policy=policy_of(config)))

    def apply_config(self, config: TerminalConfig) -> None:
        """Use changed settings from now on (the flow's policy and the engine's timeouts)."""
        self.config = config
        self.engine.config = config
        self.state = replace(self.state, policy=policy_of(config, self.state.policy.pin_entry))

    def run(self, *args: Any, loop: asyncio.AbstractEventLoop | None = None,
            **kwargs: Any) -> None:
        """Run on the shared loop unless told otherwise (docs/design-notes.md)."""
        from terminal.runtime import install

        return super().run(*args, loop=loop or install(), **kwargs)

    # -- layout ------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """Status line, the flow's panels, the inspector pane and the key hints."""
        yield StatusLine(id="status")
        with _Body(id="body"):
            with Vertical(id="main"):
                yield Static("", id="prompt", markup=False)
                with ContentSwitcher(initial="menu", id="panels"):
                    with Horizontal(id="menu"):
                        with Vertical(id="menu-left"):
                            yield OptionList(*[Option(f"{i}  {_(label)}", id=key)
                                               for i, (key, label) in enumerate(MENU, start=1)],
                                             id="menu-list")
                            yield Static("", id="menu-note", markup=False)
                        yield Static(self._guide(), id="guide")
                    with Vertical(id="original"):
                        yield DataTable(id="original-table", cursor_type="row")
                        yield Input(placeholder=_("original RRN (R to type one)"), id="rrn-input",
                                    restrict=r"[0-9A-Za-z]*", max_length=12)
                    with Vertical(id="original_date"):
                        yield Static("", id="date-context", markup=False)
                        yield Static("", id="date-display", markup=False)
                    with Horizontal(id="amount"):
                        with Vertical(id="amount-left"):
                            yield Static("", id="amount-context")
                            yield AmountDisplay("0.00", id="amount-display")
                            yield Static(self.config.currency, id="amount-currency")
                        yield Keypad(id="keypad")
                    yield OptionList(*[Option(f"{i}  {_(r.label)}", id=r.value)
                                       for i, r in enumerate(RefundReason, start=1)], id="reason")
                    with Vertical(id="card"):
                        yield OptionList(*[Option(f"{c.name:<26} {c.masked}  {c.outcome}",
                                                  id=str(i)) for i, c in enumerate(self.deck)],
                                         id="card-list")
                        with Horizontal(id="card-modes"):
                            for key, mode in MODES.items():
                                button = Button(f"{key.upper()} {_(_MODE_NAMES[mode])}",
                                                id=f"mode-{key}", classes="mode")
                                button.can_focus = False
                                yield button
                    with Vertical(id="pin"):
                        yield Static("", id="pin-card", markup=False)
                        yield Static("", id="pin-display", markup=False)
                    yield Static("", id="confirm", markup=False)
                    with Vertical(id="supervisor"):
                        yield Input(password=True, id="password", placeholder=_("password"))
                    yield Static("", id="sending")
                    with Horizontal(id="result"):
                        with Vertical(id="result-left"):
                            yield Static("", id="result-title")
                            yield Static("", id="result-detail", markup=False)
                        yield ReceiptView(id="result-receipt")
                yield Static("", id="hint")
            yield MessagePane(id="inspector")

    def _guide(self) -> str:
        password = self.config.supervisor_password
        shown = password if password == TerminalConfig().supervisor_password else "****"
        # Paragraphs, not hard-wrapped lines: the box reflows them to its width.
        return _("QUICK START\n\n"
                 "Sale: 1, type 1250 for 12.50, Enter, then I to insert the highlighted card."
                 "\n\n"
                 "Refund: 2, Enter on the sale, Enter (the amount left; typing replaces it), "
                 "4 (return), I, password {password}.\n\n"
                 "Void: 3, Enter on the transaction, Enter.\n\n"
                 "Other cards (↑↓ on the card list) decline, or never get an answer."
                 ).format(password=shown)

    def on_mount(self) -> None:
        """Show the menu, then connect and sign on."""
        self._mounted = True
        self.place_pane()
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
        except SignOnRefused as exc:
            # The host answered, but its working keys failed their check values every time.
            self.offline_reason = str(exc)
            self.link_state = "SIGN-ON REFUSED"
            self.update_pin_entry()
            self.notify(str(exc), title=_("Working keys refused"), severity="error", timeout=8)
            return
        except LinkError as exc:
            self.offline_reason = str(exc)
            self.link_state = "OFFLINE"
            self.notify(str(exc), title=_("Host unreachable"), severity="error", timeout=8)
            return
        self.offline_reason = "" if resp.approved else f"sign-on refused: {resp.response_code}"
        self.link_state = "ONLINE" if resp.approved else "SIGN-ON REFUSED"
        self.update_pin_entry()
        self.refresh_status()

    def update_pin_entry(self) -> None:
        """Ask for PINs only while the terminal holds a key to encipher them."""
        security = self.engine.session.security
        able = security is not None and security.can_encipher_pin
        if able != self.state.policy.pin_entry:
            self.state = replace(self.state, policy=replace(self.state.policy, pin_entry=able))

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
        mark = {"ONLINE": "● ", "OFFLINE": "✖ "}.get(self.link_state, "… ") + _(self.link_state)
        main = self.screen_stack[0] if self.screen_stack else None
        if not self._mounted or main is None or not main.query("#menu-note"):
            return  # a late echo or sign-on result while the app shuts down
        text = status_text(self.config.terminal_id, self.config.merchant_id,
                           self.journal.batch_number, self.journal.business_date, mark)
        for screen in self.screen_stack:
            for line in screen.query(StatusLine):
                line.update(text)
        note = main.query_one("#menu-note", Static)
        if self.link_state == "OFFLINE":
            note.update(f"{self.offline_reason}\n" + _("Press F5 to try again."))
        else:
            note.update(self._sign_on_note() + _("{lines}  ·  {reversals} pending").format(
                lines=plural(len(self.journal), N_("journal line"), N_("journal lines")),
                reversals=plural(len(self.journal.pending_reversals()), N_("reversal"),
                                 N_("reversals"))))

    def _sign_on_note(self) -> str:
        """On CUP, the sign-on the batch comes from (a CUP terminal works in the batch its
        last sign-on opened, and signs on again after a 77 or A0)."""
        if not self.cup or not isinstance(self.engine, CupDriver):
            return ""
        if self.engine.cup.signed_on:
            return _("Signed on: the host opened batch {batch}.").format(
                batch=self.journal.batch_number) + "\n"
        return _("Not signed on: the next transaction signs on first.") + "\n"

    def _traffic(self, item: Traffic) -> None:
        self.post_message(TrafficSeen(item))

    def action_reconnect(self) -> None:
        """Connect and sign on again."""
        self.sign_on()

    def on_traffic_seen(self, message: TrafficSeen) -> None:
        """Keep the message for the inspector and redraw it when it shows."""
        self.traffic.append(message.item)
        del self.traffic[:-inspector.KEEP]
        self._fill_pane()

    # -- the message inspector ---------------------------------------------------------------

    @property
    def wide(self) -> bool:
        """Room for the inspector beside the 80-column flow (and for whole masked PANs)."""
        return self.pane_place is PanePlace.BESIDE

    @property
    def pane_place(self) -> PanePlace:
        """Where the inspector goes in a window of this size."""
        return pane_place(self.size.width, self.size.height)

    @property
    def pane_shown(self) -> bool:
        """The inspector shows: beside or below the flow unless closed, else once F2 opens
        it."""
        return self._pane_wanted[self.pane_place]

    @property
    def pane_covers_flow(self) -> bool:
        """The inspector fills the window in place of the flow (too small for both)."""
        return self.pane_shown and self.pane_place is PanePlace.COVER

    def action_inspector(self) -> None:
        """Show or hide the message inspector (it belongs to the main screen)."""
        if self.screen_stack and self.screen is not self.screen_stack[0]:
            return
        self._pane_wanted[self.pane_place] = not self.pane_shown
        self.place_pane()

    def place_pane(self) -> None:
        """Put the inspector where the window's size says (or hide it), and redraw it."""
        if not self._mounted or not self.screen_stack:
            return
        main = self.screen_stack[0]
        covered = main.has_class(f"-{PanePlace.COVER.value}")
        for place in PanePlace:
            main.set_class(self.pane_shown and self.pane_place is place, f"-{place.value}")
        scroll = main.query_one("#inspector-scroll")
        if self.pane_covers_flow and not covered:
            self._focus_before_pane = self.focused
            scroll.focus()
        elif covered and not self.pane_covers_flow:
            if self._focus_before_pane is not None and self._focus_before_pane.is_attached:
                self._focus_before_pane.focus()
            else:
                self.set_focus(None)
        self._fill_pane(reopened=True)

    def _fill_pane(self, reopened: bool = False) -> None:
        """Render the traffic for the pane's width; open it on the last financial exchange
        unless the operator is scrolling it."""
        found = self.screen_stack[0].query(MessagePane) if self.screen_stack else None
        if not found or not self.pane_shown:
            return  # hidden, or traffic while the app shuts down
        pane = found.first()
        width = self.size.width - (FLOW_WIDTH + 1 if self.wide else 0)  # + its border
        lines, anchor = inspector.layout(self.traffic, times.zone(self.config.timezone), width,
                                         self.link.codec.profile)
        scrolling = self.focused is not None and self.focused.id == "inspector-scroll"
        pane.show(lines, anchor if reopened or not scrolling else None,
                  MessagePane.HELP_FULL if self.pane_covers_flow else MessagePane.HELP)

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
        self.update_pin_entry()  # a sign-on after a 63/77 may have replaced or dropped keys
        self.refresh_status()

    def watch_state(self, state: FlowState) -> None:
        """Render the flow's current step."""
        if not self._mounted or not self.query("#panels"):
            return  # not built yet, or shutting down
        switcher = self.query_one("#panels", ContentSwitcher)
        entering = switcher.current != state.step.value
        switcher.current = state.step.value
        self.query_one("#prompt", Static).update(self._prompt(state))
        hint = _(HINTS[state.step])
        if state.step is Step.SUPERVISOR and self.config.supervisor_password == "0000":
            hint = _("Type the supervisor password (demo default 0000), Enter   Esc: cancel")
        self.query_one("#hint", Static).update(hint)
        render = getattr(self, f"_render_{state.step.value}", None)
        if render is not None:
            render(state, entering)
        if state.step is not Step.SENDING and self._ticker is not None:
            self._ticker.stop()
            self._ticker = None

    def _prompt(self, state: FlowState) -> str:
        kind = f"{_(state.kind.heading)}  " if state.kind else ""
        amount = ""
        if state.step in (Step.CARD, Step.PIN, Step.CONFIRM, Step.SUPERVISOR, Step.SENDING):
            amount = f"{state.amount.currency} {state.amount.format()}  "
        if state.step is Step.RESULT and state.outcome is not None:
            return f"{kind}{amount}{outcome_title(state.outcome)}"
        return f"{kind}{amount}{_(state.message or N_('Main menu'))}"

    def _render_menu(self, state: FlowState, entering: bool) -> None:
        if entering:
            self.query_one("#menu-list", OptionList).focus()
        self.refresh_status()

    def _render_original(self, state: FlowState, entering: bool) -> None:
        if not entering:
            return
        table = self.query_one("#original-table", DataTable)
        table.clear(columns=True)
        refund = state.kind is TxnKind.REFUND
        table.add_columns(_("Time"), _("Type"), _("Card"), _("Amount"), _("RRN"),
                          _("Left") if refund else _("Batch"))
        self.query_one("#rrn-input", Input).value = ""
        # A void lists settled transactions too, marked: the host refuses them (12), and
        # showing that refusal is part of learning the terminal.
        rows = self.journal.refundable() if refund else self.journal.void_choices()
        self._originals = {}
        cur = self.config.currency
        tz = times.zone(self.config.timezone)
        for txn in rows:
            left = self.journal.remaining_minor(txn) if txn.kind is TxnKind.SALE else None
            self._originals[str(txn.seq)] = flow.Original(
                txn.rrn or "", txn.kind, txn.amount_minor, left, txn.masked_pan,
                txn.card_name)
            last = money_text(left, cur) if refund else (
                _("{batch} settled").format(batch=txn.batch) if txn.settled else txn.batch)
            table.add_row(times.when(txn, tz)[:12], _(txn.kind.heading),
                          card_cell(txn.masked_pan, self.wide),
                          money_text(txn.amount_minor, cur), txn.rrn, last, key=str(txn.seq))
        table.focus()
        empty = "  " + _("(none in the journal: press R to key in an RRN)")
        self.query_one("#prompt", Static).update(self._prompt(state) + ("" if rows else empty))

    def _render_original_date(self, state: FlowState, entering: bool) -> None:
        rrn = state.original.rrn if state.original else ""
        self.query_one("#date-context", Static).update(_(
            "Refund of RRN {rrn}: this terminal's journal does not hold the original.\n"
            "Type the date printed on its slip, month then day.").format(rrn=rrn))
        shown = (state.date_digits + "_" * flow.DATE_DIGITS)[:flow.DATE_DIGITS]
        self.query_one("#date-display", Static).update(f"MM/DD  {shown[:2]}/{shown[2:]}")
        if entering:
            self.set_focus(None)

    def _render_amount(self, state: FlowState, entering: bool) -> None:
        self.query_one(AmountDisplay).show(state.amount)
        context = ""
        orig = state.original
        cur = self.config.currency
        if orig is not None and state.kind is TxnKind.VOID:
            context = _("Void of {rrn}: the amount of the original {kind}").format(
                rrn=orig.rrn, kind=_(orig.kind.heading).lower())
        elif orig is not None:
            context = _("Original {rrn}  {card}\nSale {amount}  ·  refundable {left}").format(
                rrn=orig.rrn, card=orig.masked_pan or "",
                amount=money_text(orig.amount_minor, cur),
                left=money_text(orig.remaining_minor, cur))
        if state.prefilled:
            context += "\n" + _("Typing replaces it; Backspace edits it")
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

    def _render_pin(self, state: FlowState, entering: bool) -> None:
        card = state.card
        self.query_one("#pin-card", Static).update(
            f"{card.name if card else ''}  {card.masked if card else ''}\n"
            f"{state.amount.currency} {state.amount.format()}")
        shown = "*" * len(state.pin) if state.pin else _("(type the PIN)")
        self.query_one("#pin-display", Static).update(shown)
        if entering:
            self.set_focus(None)

    def _render_confirm(self, state: FlowState, entering: bool) -> None:
        orig = state.original
        assert orig is not None
        self.query_one("#confirm", Static).update(_(
            "VOID the {kind} {rrn}\n\nCard    {card}\nAmount  {currency} {amount}\n\n"
            "Press Enter to confirm.").format(
                kind=_(orig.kind.heading).lower(), rrn=orig.rrn, card=orig.masked_pan or "-",
                currency=self.config.currency, amount=state.amount.format()))
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
            text = _("PROCESSING\n\nRequest sent to the host.\nWaiting for the answer: "
                     "{seconds} s").format(seconds=math.ceil(left))
        else:
            text = _("NO ANSWER\n\nSending a reversal to the host …")
        self.query_one("#sending", Static).update(text)

    def _render_result(self, state: FlowState, entering: bool) -> None:
        outcome = state.outcome
        assert outcome is not None
        if entering:
            self.copy = receipt.Copy.MERCHANT
        title = self.query_one("#result-title", Static)
        title.update(outcome_title(outcome))
        title.set_classes(outcome.status)
        detail = _(outcome.detail) if outcome.detail else ""
        if outcome.status == "declined" and outcome.txn_seq is not None:
            rule = self.journal.get(outcome.txn_seq).rule
            detail += "\n\n" + _("DE44 rule: {rule}").format(rule=rule) if rule else ""
        self.query_one("#result-detail", Static).update(detail)
        view = self.query_one("#result-receipt", ReceiptView)
        if outcome.txn_seq is not None:
            txn = self.journal.get(outcome.txn_seq)
            view.show(receipt.render(txn, self.copy, self.config.merchant_id,
                                     self.config.terminal_id, timezone=self.config.timezone))
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
        if self.pane_covers_flow:
            return  # the flow is hidden behind the inspector: keys only scroll it
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
        elif step in (Step.PIN, Step.ORIGINAL_DATE):
            typed: dict[str, flow.Event] = {"backspace": flow.Backspace(),
                                            "delete": flow.Clear(), "enter": flow.Enter()}
            typed_event = typed.get(key)
            if typed_event is None and char.isdigit():
                typed_event = flow.Digit(char)
            if typed_event is not None:
                self.dispatch(typed_event)
                event.stop()
        elif step is Step.ORIGINAL and key == "r":
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
        if known is None:  # not in this journal: the host decides (a void asks the amount)
            self.dispatch(flow.PickOriginal(flow.Original(rrn)))
            return
        left = self.journal.remaining_minor(known) if known.kind is TxnKind.SALE else None
        self.dispatch(flow.PickOriginal(flow.Original(
            rrn, known.kind, known.amount_minor, left, known.masked_pan, known.card_name)))

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
        """Escape: close an inspector that covers the flow, else leave the current step."""
        if self.pane_covers_flow:
            self.action_inspector()
            return
        if self.state.step is Step.ORIGINAL and self.focused is self.query_one("#rrn-input"):
            table = self.query_one("#original-table", DataTable)
            if table.row_count:
                table.focus()
                return
        self.dispatch(flow.Cancel())
