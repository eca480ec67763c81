"""Unit tests of the pure terminal flow: events in, state and effects out."""

from __future__ import annotations

import pytest

from protocol.codes import EntryMode, RefundReason
from protocol.money import Money
from terminal import flow
from terminal.cards import load_deck
from terminal.flow import FlowState, Step
from terminal.journal import TxnKind

CARD = load_deck()[0]
APPROVED = flow.Outcome("approved", "APPROVED", txn_seq=1)


def run(state: FlowState, *events: flow.Event) -> tuple[FlowState, list[flow.Effect]]:
    """Apply events in order; collect every effect."""
    effects: list[flow.Effect] = []
    for event in events:
        state, out = flow.step(state, event)
        effects += out
    return state, effects


def test_sale_path_emits_one_transmit() -> None:
    """Sale: amount digits fill from the right, a card is presented, one Transmit follows."""
    state, effects = run(FlowState(), flow.Start(TxnKind.SALE), flow.Digit("1"),
                         flow.Digit("2"), flow.Digit("5"), flow.Digit("0"), flow.Enter())
    assert state.step is Step.CARD and state.amount == Money(1250, "CNY") and not effects
    state, effects = run(state, flow.PresentCard(CARD, EntryMode.CONTACTLESS))
    assert state.step is Step.SENDING
    assert effects == [flow.Transmit(flow.Draft(TxnKind.SALE, Money(1250, "CNY"), CARD,
                                                EntryMode.CONTACTLESS))]


def test_zero_amount_is_refused() -> None:
    """Enter on an empty or zero amount stays on the amount step with a message."""
    state, effects = run(FlowState(), flow.Start(TxnKind.SALE), flow.Digit("0"), flow.Enter())
    assert state.step is Step.AMOUNT and "above zero" in state.message and not effects


def test_amount_editing_keys() -> None:
    """Backspace drops the last digit, Clear empties, 00 adds two zeros, leading zeros vanish."""
    state, _ = run(FlowState(), flow.Start(TxnKind.SALE), flow.Digit("0"), flow.Digit("7"),
                   flow.Digit("00"), flow.Backspace())
    assert state.digits == "70"
    state, _ = run(state, flow.Clear())
    assert state.digits == ""


def test_amount_length_is_capped() -> None:
    """More than ten digits are refused with a message, keeping the amount unchanged."""
    state, _ = run(FlowState(), flow.Start(TxnKind.SALE), *[flow.Digit("9")] * 10)
    state, _ = run(state, flow.Digit("9"))
    assert state.digits == "9" * 10 and "too long" in state.message


def test_refund_defaults_to_remaining_and_needs_supervisor() -> None:
    """Refund: the amount starts at what is left; reason, card, then the supervisor password;
    a wrong password sends nothing, the right one sends a refund with the reason."""
    orig = flow.Original("000000000001", amount_minor=10000, remaining_minor=4000)
    state, _ = run(FlowState(), flow.Start(TxnKind.REFUND), flow.PickOriginal(orig))
    assert state.step is Step.AMOUNT and state.amount.minor == 4000
    state, effects = run(state, flow.Enter(), flow.PickReason(RefundReason.PRODUCT_RECALL),
                         flow.PresentCard(CARD, EntryMode.CHIP), flow.Password("1234"))
    assert state.step is Step.SUPERVISOR and "Wrong" in state.message and not effects
    state, effects = run(state, flow.Password("0000", "SUP1"))
    assert state.step is Step.SENDING
    draft = effects[0].draft
    assert (draft.kind, draft.amount.minor, draft.reason, draft.original, draft.operator) == (
        TxnKind.REFUND, 4000, RefundReason.PRODUCT_RECALL, orig, "SUP1")


def test_first_digit_replaces_the_prefilled_refund_amount() -> None:
    """Typing 500 over the pre-filled 125.00 gives 5.00 (not 12505.00); Backspace instead
    edits the pre-filled amount, and later digits append as usual."""
    orig = flow.Original("000000000001", amount_minor=12500, remaining_minor=12500)
    start, _ = run(FlowState(), flow.Start(TxnKind.REFUND), flow.PickOriginal(orig))
    assert start.prefilled
    typed, _ = run(start, flow.Digit("5"), flow.Digit("0"), flow.Digit("0"))
    assert typed.amount.minor == 500 and not typed.prefilled
    edited, _ = run(start, flow.Backspace(), flow.Digit("7"))
    assert edited.amount.minor == 12507


def test_void_of_a_keyed_rrn_asks_for_the_amount() -> None:
    """A void of an RRN the journal does not know asks for the amount, then confirms."""
    policy = flow.Policy(supervisor_for_void=False)
    state, _ = run(FlowState(policy=policy), flow.Start(TxnKind.VOID),
                   flow.PickOriginal(flow.Original("ABC123456789")))
    assert state.step is Step.AMOUNT and not state.prefilled
    state, effects = run(state, *[flow.Digit(d) for d in "4200"], flow.Enter())
    assert state.step is Step.CONFIRM and not effects
    state, effects = run(state, flow.Enter())
    assert effects[0].draft.amount.minor == 4200
    assert effects[0].draft.original == flow.Original("ABC123456789")


def test_void_is_full_amount_after_confirm() -> None:
    """Void: the amount is the original's, there is no amount step, Enter confirms."""
    orig = flow.Original("000000000009", TxnKind.SALE, amount_minor=4200)
    policy = flow.Policy(supervisor_for_void=False)
    state, effects = run(FlowState(policy=policy), flow.Start(TxnKind.VOID),
                         flow.PickOriginal(orig), flow.Digit("5"))
    assert state.step is Step.CONFIRM and state.amount.minor == 4200 and not effects
    state, effects = run(state, flow.Enter())
    assert state.step is Step.SENDING and effects[0].draft.amount.minor == 4200


def test_cancel_returns_to_menu_but_not_while_sending() -> None:
    """Cancel from an input step resets; while sending it is ignored."""
    state, _ = run(FlowState(), flow.Start(TxnKind.SALE), flow.Digit("5"), flow.Cancel())
    assert state == FlowState()
    state, _ = run(FlowState(), flow.Start(TxnKind.SALE), flow.Digit("5"), flow.Enter(),
                   flow.PresentCard(CARD, EntryMode.SWIPE), flow.Cancel())
    assert state.step is Step.SENDING


def test_result_then_enter_goes_back_to_menu() -> None:
    """Finished shows the outcome; Enter leaves it for a fresh menu keeping the policy."""
    policy = flow.Policy(currency="USD")
    state, _ = run(FlowState(policy=policy), flow.Start(TxnKind.SALE), flow.Digit("5"),
                   flow.Enter(), flow.PresentCard(CARD, EntryMode.CHIP),
                   flow.Finished(APPROVED))
    assert state.step is Step.RESULT and state.outcome == APPROVED
    state, _ = run(state, flow.Enter())
    assert state == FlowState(policy=policy)


def test_events_out_of_place_are_ignored() -> None:
    """A digit on the menu or a card on the amount step changes nothing."""
    menu = FlowState()
    assert flow.step(menu, flow.Digit("1")) == (menu, ())
    state, _ = run(menu, flow.Start(TxnKind.SALE))
    assert flow.step(state, flow.PresentCard(CARD, EntryMode.CHIP)) == (state, ())



CUP = FlowState(policy=flow.Policy(original_date=True, supervisor_for_refund=False))


def _typed(mmdd: str) -> list[flow.Event]:
    return [flow.Digit(d) for d in mmdd]


def test_cup_refund_of_a_keyed_rrn_asks_for_the_originals_date() -> None:
    """On CUP a refund of an RRN the journal does not hold asks for the original's date (4
    digits at most, Backspace edits); the date rides in the draft's original (the 0220's
    61.3)."""
    state, _ = run(CUP, flow.Start(TxnKind.REFUND), flow.PickOriginal(flow.Original("RRN77")))
    assert state.step is Step.ORIGINAL_DATE and "MMDD" in state.message
    state, _ = run(state, *_typed("12205"))
    assert state.date_digits == "1220" and "4 digits" in state.message
    state, _ = run(state, flow.Backspace(), flow.Digit("5"), flow.Enter())
    assert state.step is Step.AMOUNT and state.digits == ""
    state, effects = run(state, *_typed("300"), flow.Enter(),
                         flow.PickReason(RefundReason.RETURN),
                         flow.PresentCard(CARD, EntryMode.SWIPE))
    assert effects[0].draft.original == flow.Original("RRN77", date_mmdd="1225")


@pytest.mark.parametrize(("mmdd", "says"), [
    ("", "4 digits"), ("031", "4 digits"), ("0015", "No such month"),
    ("1301", "No such month"), ("0230", "No such day"), ("0431", "No such day"),
    ("0100", "No such day")])
def test_cup_original_date_must_be_a_real_month_and_day(mmdd: str, says: str) -> None:
    """Enter on a date that is not a real MMDD stays on the step and says what is wrong."""
    state, _ = run(CUP, flow.Start(TxnKind.REFUND), flow.PickOriginal(flow.Original("RRN77")),
                   *_typed(mmdd), flow.Enter())
    assert state.step is Step.ORIGINAL_DATE and says in state.message
    assert state.date_digits == mmdd


def test_29_february_is_a_date_from_a_slip() -> None:
    """A slip carries no year, so 0229 is accepted."""
    state, _ = run(CUP, flow.Start(TxnKind.REFUND), flow.PickOriginal(flow.Original("RRN77")),
                   *_typed("0229"), flow.Enter())
    assert state.step is Step.AMOUNT and state.original is not None
    assert state.original.date_mmdd == "0229"


def test_no_date_step_off_cup_or_for_an_original_the_journal_holds() -> None:
    """The generic profile asks no date; nor does CUP for an original with known amount (from
    the journal, which knows its date), nor for a void."""
    generic, _ = run(FlowState(), flow.Start(TxnKind.REFUND),
                     flow.PickOriginal(flow.Original("RRN77")))
    known, _ = run(CUP, flow.Start(TxnKind.REFUND),
                   flow.PickOriginal(flow.Original("RRN77", amount_minor=500,
                                                   remaining_minor=500)))
    void, _ = run(CUP, flow.Start(TxnKind.VOID), flow.PickOriginal(flow.Original("RRN77")))
    assert (generic.step, known.step, void.step) == (Step.AMOUNT, Step.AMOUNT, Step.AMOUNT)
