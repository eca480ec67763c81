"""The terminal's transaction flow as a pure state machine: events in, state and effects out.

No UI, no I/O, no clock. :func:`step` takes a :class:`FlowState` and an event and returns the
next state and a tuple of effects; the only effect is :class:`Transmit`, which the app hands to
the engine in a worker. The engine's answer comes back as a :class:`Finished` event.

Paths through the steps::

    Sale:    MENU -> AMOUNT -> CARD [-> PIN] -> SENDING -> RESULT -> MENU
    Refund:  MENU -> ORIGINAL [-> ORIGINAL_DATE] -> AMOUNT -> REASON -> CARD [-> SUPERVISOR]
             -> SENDING -> RESULT
    Void:    MENU -> ORIGINAL [-> AMOUNT] -> CONFIRM [-> SUPERVISOR] -> SENDING -> RESULT

A refund's amount starts as what is left of the sale, and a void of a keyed-in RRN the journal
does not know asks for the amount first. On a CUP terminal (:attr:`Policy.original_date`) a
refund of a keyed-in RRN first asks for the original's date from its slip (MMDD): the 0220
names it in 61.3, and the host finds the original by date and RRN; the step takes only a real
month and day. A pre-filled amount is replaced by the first digit typed, as on a real terminal;
Backspace edits it instead.

A sale asks for the PIN when the card wants one (the deck's ``pin``) and the terminal can
encipher it (:attr:`Policy.pin_entry`: it holds a PIN key). The PIN step takes 4-12 digits,
shows only their count, and hands the PIN to the engine inside the draft, nowhere else.

``Cancel`` leaves any input step for the menu; nothing can interrupt ``SENDING``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import date

from protocol.codes import EntryMode, RefundReason
from protocol.money import Money
from terminal.cards import Card
from terminal.i18n import N_
from terminal.journal import TxnKind

MAX_AMOUNT_DIGITS = 10
DATE_DIGITS = 4
#: A year with a 29 February: the slip's date has no year, and 0229 is a real date.
_LEAP_YEAR = 2000
PIN_DIGITS_MIN, PIN_DIGITS_MAX = 4, 12


class Step(enum.StrEnum):
    """Which screen of the flow is showing."""

    MENU = "menu"
    ORIGINAL = "original"
    ORIGINAL_DATE = "original_date"
    AMOUNT = "amount"
    REASON = "reason"
    CARD = "card"
    PIN = "pin"
    CONFIRM = "confirm"
    SUPERVISOR = "supervisor"
    SENDING = "sending"
    RESULT = "result"


@dataclass(frozen=True)
class Original:
    """The transaction a refund or void refers to (from the journal or keyed in by RRN).

    :ivar date_mmdd: the original's date as keyed from its slip (MMDD), for an RRN the journal
        does not hold: a CUP refund names it in 61.3.
    :ivar approval_code: the hold's approval code (DE38), which a completion quotes.
    """

    rrn: str
    kind: TxnKind = TxnKind.SALE
    amount_minor: int | None = None
    remaining_minor: int | None = None
    masked_pan: str | None = None
    card_name: str | None = None
    date_mmdd: str | None = None
    approval_code: str | None = None


@dataclass(frozen=True)
class Policy:
    """The settings the flow obeys."""

    currency: str = "CNY"
    supervisor_password: str = "0000"
    supervisor_for_refund: bool = True
    supervisor_for_void: bool = True
    #: the terminal holds a PIN key, so cards that want a PIN are asked for one.
    pin_entry: bool = False
    #: a refund of an RRN the journal does not hold asks for the original's date (MMDD) from
    #: its slip, as CUP terminals do (the 0220's 61.3).
    original_date: bool = False


@dataclass(frozen=True)
class Draft:
    """A transaction the operator has finished keying, ready for the engine to send."""

    kind: TxnKind
    amount: Money
    card: Card | None = None
    entry_mode: EntryMode | None = None
    original: Original | None = None
    reason: RefundReason | None = None
    operator: str | None = None
    #: the PIN the cardholder typed; never shown, stored or logged (the session turns it into
    #: a PIN block and drops it).
    pin: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Outcome:
    """What became of a draft, as the result screen shows it.

    :ivar status: ``approved``, ``declined``, ``no_response`` (timed out, reversal sent) or
        ``failed`` (not sent: offline, rejected locally).
    """

    status: str
    title: str
    detail: str = ""
    response_code: str | None = None
    txn_seq: int | None = None

    @property
    def approved(self) -> bool:
        """True when the host approved."""
        return self.status == "approved"


@dataclass(frozen=True)
class FlowState:
    """Everything the screens need to render the flow."""

    step: Step = Step.MENU
    kind: TxnKind | None = None
    digits: str = ""
    original: Original | None = None
    reason: RefundReason | None = None
    card: Card | None = None
    entry_mode: EntryMode | None = None
    operator: str | None = None
    message: str = ""
    outcome: Outcome | None = None
    policy: Policy = Policy()
    #: the amount was filled in for the operator: the next digit starts it afresh.
    prefilled: bool = False
    #: the PIN digits typed so far (screens show only how many).
    pin: str = field(default="", repr=False)
    #: the digits of the original's date typed so far (MMDD).
    date_digits: str = ""

    @property
    def amount(self) -> Money:
        """The keyed amount (digits fill from the right, like a real terminal)."""
        return Money(int(self.digits or "0"), self.policy.currency)

    @property
    def needs_supervisor(self) -> bool:
        """True when this kind of transaction asks for the supervisor password."""
        return (self.kind is TxnKind.REFUND and self.policy.supervisor_for_refund) or (
            self.kind is TxnKind.VOID and self.policy.supervisor_for_void)


# -- events ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Menu choice: begin a sale, refund or void."""

    kind: TxnKind


@dataclass(frozen=True)
class Digit:
    """A keypad digit (``"0"``-``"9"`` or ``"00"``)."""

    digit: str


@dataclass(frozen=True)
class Backspace:
    """Remove the last digit."""


@dataclass(frozen=True)
class Clear:
    """Clear the amount."""


@dataclass(frozen=True)
class Enter:
    """OK / confirm the current step."""


@dataclass(frozen=True)
class Cancel:
    """Abandon the transaction (or leave the result screen)."""


@dataclass(frozen=True)
class PickOriginal:
    """The operator chose the original transaction."""

    original: Original


@dataclass(frozen=True)
class PickReason:
    """The operator chose the refund reason."""

    reason: RefundReason


@dataclass(frozen=True)
class PresentCard:
    """A card was swiped, inserted, tapped or keyed."""

    card: Card
    mode: EntryMode


@dataclass(frozen=True)
class Password:
    """The supervisor typed a password."""

    text: str
    operator: str = "SUPERVISOR"


@dataclass(frozen=True)
class Finished:
    """The engine finished the transaction."""

    outcome: Outcome


Event = (Start | Digit | Backspace | Clear | Enter | Cancel | PickOriginal | PickReason
         | PresentCard | Password | Finished)


@dataclass(frozen=True)
class Transmit:
    """Effect: send this draft to the host."""

    draft: Draft


Effect = Transmit


# -- the machine -------------------------------------------------------------------------------

_PROMPTS = {
    Step.ORIGINAL: N_("Choose the original transaction"),
    Step.ORIGINAL_DATE: N_("Enter the original's date from its slip (MMDD)"),
    Step.AMOUNT: N_("Enter the amount"),
    Step.REASON: N_("Why is this refund made?"),
    Step.CARD: N_("Present the card"),
    Step.PIN: N_("Cardholder: enter the PIN"),
    Step.CONFIRM: N_("Confirm"),
    Step.SUPERVISOR: N_("Supervisor password"),
    Step.SENDING: N_("Processing"),
}


def _go(state: FlowState, step: Step, **changes: object) -> FlowState:
    changes.setdefault("message", _PROMPTS.get(step, ""))
    return replace(state, step=step, **changes)  # type: ignore[arg-type]


def _reset(state: FlowState) -> FlowState:
    return FlowState(policy=state.policy)


def step(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    """Apply ``event`` to ``state``: the next state and the effects to run."""
    if isinstance(event, Cancel):
        if state.step is Step.SENDING:
            return state, ()
        return _reset(state), ()
    handler = _HANDLERS.get(state.step)
    if handler is None:
        return state, ()
    return handler(state, event)


def _menu(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if not isinstance(event, Start):
        return state, ()
    fresh = replace(_reset(state), kind=event.kind)
    if event.kind is TxnKind.SALE:
        return _go(fresh, Step.AMOUNT), ()
    return _go(fresh, Step.ORIGINAL), ()


def _original(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if not isinstance(event, PickOriginal):
        return state, ()
    orig = event.original
    if state.kind is TxnKind.REFUND and state.policy.original_date and \
            orig.amount_minor is None and not orig.date_mmdd:
        # Keyed in, not in the journal: nothing but the RRN is known, and CUP needs the date.
        return _go(state, Step.ORIGINAL_DATE, original=orig, date_digits=""), ()
    if state.kind is TxnKind.VOID and orig.amount_minor:
        return _go(state, Step.CONFIRM, original=orig, digits=str(orig.amount_minor)), ()
    default = orig.remaining_minor if orig.remaining_minor is not None else orig.amount_minor
    return _go(state, Step.AMOUNT, original=orig, digits=str(default) if default else "",
               prefilled=bool(default)), ()


def date_problem(mmdd: str) -> str | None:
    """What is wrong with ``mmdd`` as a date from a slip (a message id), None when it is a
    real month and day."""
    if len(mmdd) != DATE_DIGITS or not mmdd.isdigit():
        return N_("Enter 4 digits: the month, then the day (MMDD)")
    month, day = int(mmdd[:2]), int(mmdd[2:])
    if not 1 <= month <= 12:
        return N_("No such month: MM is 01 to 12")
    try:
        date(_LEAP_YEAR, month, day)
    except ValueError:
        return N_("No such day in that month: check DD")
    return None


def _original_date(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    typed = state.date_digits
    prompt = _PROMPTS[Step.ORIGINAL_DATE]
    if isinstance(event, Digit) and event.digit.isdigit() and len(event.digit) == 1:
        if len(typed) >= DATE_DIGITS:
            return replace(state, message=N_("The date has 4 digits: MMDD")), ()
        return replace(state, date_digits=typed + event.digit, message=prompt), ()
    if isinstance(event, Backspace):
        return replace(state, date_digits=typed[:-1], message=prompt), ()
    if isinstance(event, Clear):
        return replace(state, date_digits="", message=prompt), ()
    if isinstance(event, Enter):
        problem = date_problem(typed)
        if problem is not None:
            return replace(state, message=problem), ()
        assert state.original is not None
        return _go(state, Step.AMOUNT, original=replace(state.original, date_mmdd=typed),
                   digits="", prefilled=False), ()
    return state, ()


def _amount(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    digits = state.digits
    if isinstance(event, Digit):
        if not event.digit.isdigit():
            return state, ()
        digits = ("" if state.prefilled else digits) + event.digit
        digits = digits.lstrip("0")
        if len(digits) > MAX_AMOUNT_DIGITS:
            return replace(state, message=N_("The amount is too long")), ()
        return replace(state, digits=digits, message=_PROMPTS[Step.AMOUNT], prefilled=False), ()
    if isinstance(event, Backspace):
        return replace(state, digits=digits[:-1], prefilled=False), ()
    if isinstance(event, Clear):
        return replace(state, digits="", prefilled=False), ()
    if isinstance(event, Enter):
        if not digits or int(digits) == 0:
            return replace(state, message=N_("Enter an amount above zero")), ()
        if state.kind is TxnKind.REFUND:
            return _go(state, Step.REASON, prefilled=False), ()
        if state.kind is TxnKind.VOID:
            return _go(state, Step.CONFIRM, prefilled=False), ()
        return _go(state, Step.CARD), ()
    return state, ()


def _reason(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if isinstance(event, PickReason):
        return _go(state, Step.CARD, reason=event.reason), ()
    return state, ()


def _card(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if not isinstance(event, PresentCard):
        return state, ()
    state = replace(state, card=event.card, entry_mode=event.mode)
    if state.policy.pin_entry and event.card.needs_pin and \
            state.kind in (TxnKind.SALE, TxnKind.AUTHORIZE):
        return _go(state, Step.PIN, pin=""), ()
    if state.needs_supervisor:
        return _go(state, Step.SUPERVISOR), ()
    return _send(state)


def _pin(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if isinstance(event, Digit) and event.digit.isdigit() and len(event.digit) == 1:
        if len(state.pin) >= PIN_DIGITS_MAX:
            return replace(state, message=f"A PIN has at most {PIN_DIGITS_MAX} digits"), ()
        return replace(state, pin=state.pin + event.digit, message=_PROMPTS[Step.PIN]), ()
    if isinstance(event, Backspace):
        return replace(state, pin=state.pin[:-1], message=_PROMPTS[Step.PIN]), ()
    if isinstance(event, Clear):
        return replace(state, pin="", message=_PROMPTS[Step.PIN]), ()
    if isinstance(event, Enter):
        if len(state.pin) < PIN_DIGITS_MIN:
            return replace(state, message=f"A PIN has {PIN_DIGITS_MIN} to {PIN_DIGITS_MAX} "
                                          "digits"), ()
        return _send(state)
    return state, ()


def _confirm(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if not isinstance(event, Enter):
        return state, ()
    if state.needs_supervisor:
        return _go(state, Step.SUPERVISOR), ()
    return _send(state)


def _supervisor(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if not isinstance(event, Password):
        return state, ()
    if event.text != state.policy.supervisor_password:
        return replace(state, message=N_("Wrong supervisor password, try again")), ()
    return _send(replace(state, operator=event.operator))


def _send(state: FlowState) -> tuple[FlowState, tuple[Effect, ...]]:
    assert state.kind is not None
    draft = Draft(kind=state.kind, amount=state.amount, card=state.card,
                  entry_mode=state.entry_mode, original=state.original, reason=state.reason,
                  operator=state.operator, pin=state.pin or None)
    return _go(state, Step.SENDING, pin=""), (Transmit(draft),)


def _sending(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if isinstance(event, Finished):
        return _go(state, Step.RESULT, outcome=event.outcome, message=event.outcome.title), ()
    return state, ()


def _result(state: FlowState, event: Event) -> tuple[FlowState, tuple[Effect, ...]]:
    if isinstance(event, Enter):
        return _reset(state), ()
    return state, ()


_HANDLERS = {
    Step.MENU: _menu, Step.ORIGINAL: _original, Step.ORIGINAL_DATE: _original_date,
    Step.AMOUNT: _amount, Step.REASON: _reason,
    Step.CARD: _card, Step.PIN: _pin, Step.CONFIRM: _confirm, Step.SUPERVISOR: _supervisor,
    Step.SENDING: _sending, Step.RESULT: _result,
}
