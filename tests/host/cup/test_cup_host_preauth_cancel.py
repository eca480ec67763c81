"""The CUP pre-authorization cancel (0100 / 200000 / 06 / 11): it names the pre-authorization
by DE61 (batch, trace, date) and DE38 (its approval code), as a completion does, and releases
the hold: the hold's ledger group is mirrored, the hold is cancelled (``reversed``, CANCELLED),
and nothing can complete it after; on each backend."""

from __future__ import annotations

from datetime import UTC, datetime

from cup_terminal import CupTerminal, reversal_of


def _code(answer: dict[str, str]) -> tuple[str, str | None]:
    return answer["39"], answer.get("44")


def _txn(term: CupTerminal, rrn: str) -> dict[str, object]:
    found = term.svc.transaction(rrn)
    assert found is not None
    return found


def _holds(term: CupTerminal) -> dict[str, int]:
    return term.svc.balances()["pending_holds"]


def test_cancel_releases_the_hold(term: CupTerminal) -> None:
    """A cancel of an open pre-authorization is 0110 00 echoing DE38 and DE61; the hold is
    CANCELLED, the held amount released, the cancel in no batch; the ledger verifies."""
    preauth = term.preauth(50000)
    assert _holds(term) == {"CNY": 50000}
    cancel = term.cancel(preauth)
    assert (cancel["t"], *_code(cancel)) == ("0110", "00", None)
    assert cancel["38"] == preauth["38"]
    assert cancel["61"] == f"{preauth['60'][2:8]}{preauth['11']}{preauth['13']}"
    hold = _txn(term, preauth["37"])
    assert (hold["state"], hold["capture_state"]) == ("reversed", "CANCELLED")
    row = _txn(term, cancel["37"])
    assert (row["kind"], row["original_rrn"], row["settlement_state"]) == (
        "auth_cancel", preauth["37"], None)
    assert _holds(term) == {"CNY": 0}
    assert term.svc.verify()["ok"]


def test_a_cancelled_hold_is_neither_cancelled_again_nor_completed(term: CupTerminal) -> None:
    """After a cancel, a second cancel and a completion of the same pre-authorization are 25
    ORIGINAL_NOT_EFFECTIVE; nothing is held or captured."""
    preauth = term.preauth(50000)
    assert term.cancel(preauth)["39"] == "00"
    assert _code(term.cancel(preauth)) == ("25", "ORIGINAL_NOT_EFFECTIVE")
    assert _code(term.completion(preauth, 100)) == ("25", "ORIGINAL_NOT_EFFECTIVE")
    assert _holds(term) == {"CNY": 0}
    assert "merchant_payable:MERCHANT0000001" not in term.svc.balances()
    assert term.svc.verify()["ok"]


def test_cancel_of_a_completed_preauthorization_is_25(term: CupTerminal) -> None:
    """A pre-authorization already completed cannot be cancelled: 25 ORIGINAL_NOT_EFFECTIVE,
    the capture stands."""
    preauth = term.preauth(50000)
    assert term.completion(preauth, 45000)["39"] == "00"
    assert _code(term.cancel(preauth)) == ("25", "ORIGINAL_NOT_EFFECTIVE")
    assert _txn(term, preauth["37"])["state"] == "completed"
    assert term.svc.balances()["merchant_payable:MERCHANT0000001"] == {"CNY": -45000}


def test_cancel_naming_another_transaction_is_25_with_the_rule(term: CupTerminal) -> None:
    """A wrong DE38 is 25 ORIGINAL_NOT_FOUND:DE38, a DE61 naming a sale or no transaction 25
    ORIGINAL_NOT_FOUND:DE61, another date 25 ORIGINAL_NOT_FOUND:DATE; the hold stays open."""
    preauth = term.preauth(50000)
    sale = term.sale(50000)
    wrong = "999999" if preauth["38"] != "999999" else "999998"
    assert _code(term.cancel(preauth, code=wrong)) == ("25", "ORIGINAL_NOT_FOUND:DE38")
    assert _code(term.cancel(preauth, trace=sale["11"])) == ("25", "ORIGINAL_NOT_FOUND:DE61")
    assert _code(term.cancel(preauth, trace="999999")) == ("25", "ORIGINAL_NOT_FOUND:DE61")
    assert _code(term.cancel(preauth, mmdd="0101")) == ("25", "ORIGINAL_NOT_FOUND:DATE")
    assert _txn(term, preauth["37"])["state"] == "authorized"
    assert _holds(term) == {"CNY": 50000}


def test_cancel_of_part_of_the_hold_is_64(term: CupTerminal) -> None:
    """DE4 must be the whole pre-authorized amount: less is 64 VOID_AMOUNT_MISMATCH."""
    preauth = term.preauth(50000)
    assert _code(term.cancel(preauth, 20000)) == ("64", "VOID_AMOUNT_MISMATCH")
    assert _holds(term) == {"CNY": 50000}


def test_reversal_of_a_cancel_makes_the_hold_live_again(term: CupTerminal) -> None:
    """An 0400 of a cancel whose answer was lost undoes it: the hold is authorized and held
    again, and a completion then captures it."""
    preauth = term.preauth(50000)
    cancel = term.cancel(preauth)
    assert _code(reversal_of(term, cancel)) == ("00", None)
    assert _txn(term, cancel["37"])["state"] == "reversed"
    assert _txn(term, preauth["37"])["state"] == "authorized"
    assert _holds(term) == {"CNY": 50000}
    assert term.completion(preauth, 50000)["39"] == "00"
    assert term.svc.verify()["ok"]


def test_cancel_stays_out_of_the_batch_the_cutoff_closes(term: CupTerminal) -> None:
    """The cut-off closes the day's batch with the sale in it and the cancel in none; past the
    next cut-off (the batch funded) the store still verifies."""
    cancel = term.cancel(term.preauth(50000))
    sale = term.sale(7000)
    term.svc.clock.set(datetime(2026, 3, 11, 15, 30, tzinfo=UTC))  # past two cut-offs
    assert _txn(term, sale["37"])["settlement_state"] == "CLOSED_BATCH"
    assert _txn(term, cancel["37"])["settlement_state"] is None
    assert _holds(term) == {"CNY": 0}
    assert term.svc.verify()["ok"]
