"""The CUP completion void (0200 / 200000 / 06 / 21): it names a completion by DE37 and DE61
(batch, trace) in the open batch, mirrors its capture and makes the pre-authorization's hold
live again; a ``21`` naming a sale and a ``23`` naming a completion are refused; on each
backend."""

from __future__ import annotations

from datetime import UTC, datetime

from cup_terminal import CupTerminal, reversal_of

AFTER_CUTOFF = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai


def _code(answer: dict[str, str]) -> tuple[str, str | None]:
    return answer["39"], answer.get("44")


def _state(term: CupTerminal, rrn: str) -> object:
    found = term.svc.transaction(rrn)
    assert found is not None
    return found["state"]


def test_completion_void_makes_the_hold_live_again(term: CupTerminal) -> None:
    """A completion void is 0210 00: the completion is voided, nothing stays captured, the
    pre-authorization is authorized and held again, and a new completion captures it."""
    preauth = term.preauth(50000)
    done = term.completion(preauth, 45000)
    voided = term.void_completion(done, 45000)
    assert (voided["t"], *_code(voided)) == ("0210", "00", None)
    assert voided["61"] == f"{done['60'][2:8]}{done['11']}"
    assert _state(term, done["37"]) == "voided"
    assert _state(term, preauth["37"]) == "authorized"
    balances = term.svc.balances()
    assert balances["pending_holds"] == {"CNY": 50000}
    assert balances["merchant_payable:MERCHANT0000001"] == {"CNY": 0}
    assert term.completion(preauth, 30000)["39"] == "00"
    assert term.svc.verify()["ok"]


def test_completion_void_then_cancel_releases_the_hold(term: CupTerminal) -> None:
    """After a completion void the pre-authorization can be cancelled: nothing held."""
    preauth = term.preauth(50000)
    done = term.completion(preauth, 50000)
    assert term.void_completion(done, 50000)["39"] == "00"
    assert _code(term.cancel(preauth)) == ("00", None)
    assert term.svc.balances()["pending_holds"] == {"CNY": 0}
    assert term.svc.verify()["ok"]


def test_void_kind_must_match_the_original(term: CupTerminal) -> None:
    """A completion void naming a sale, and a sale void (60.1 23) naming a completion, are 25
    ORIGINAL_NOT_A_SALE; both originals stay as they were."""
    sale = term.sale(1000)
    done = term.completion(term.preauth(50000), 45000)
    assert _code(term.void_completion(sale, 1000)) == ("25", "ORIGINAL_NOT_A_SALE")
    assert _code(term.void(done, 45000)) == ("25", "ORIGINAL_NOT_A_SALE")
    assert (_state(term, sale["37"]), _state(term, done["37"])) == ("approved", "approved")


def test_completion_void_with_another_de61_is_25(term: CupTerminal) -> None:
    """DE61 naming another trace than the completion DE37 names is 25
    ORIGINAL_NOT_FOUND:DE61."""
    done = term.completion(term.preauth(50000), 45000)
    assert _code(term.void_completion(done, 45000, trace="999999")) == (
        "25", "ORIGINAL_NOT_FOUND:DE61")
    assert _state(term, done["37"]) == "approved"


def test_completion_void_after_the_cutoff_is_25_void_after_settlement(
        term: CupTerminal) -> None:
    """Once the cut-off closed the completion's batch, its void is 25 VOID_AFTER_SETTLEMENT,
    as the sale void is; the capture stands."""
    preauth = term.preauth(50000)
    done = term.completion(preauth, 45000)
    term.svc.clock.set(AFTER_CUTOFF)
    assert term.sign_on()["39"] == "00"
    assert _code(term.void_completion(done, 45000)) == ("25", "VOID_AFTER_SETTLEMENT")
    assert _state(term, done["37"]) == "approved"
    assert _state(term, preauth["37"]) == "completed"


def test_reversal_of_a_completion_void_restores_the_capture(term: CupTerminal) -> None:
    """An 0400 of a completion void whose answer was lost undoes it: the completion is
    captured again, its pre-authorization completed, nothing held; the ledger verifies."""
    preauth = term.preauth(50000)
    done = term.completion(preauth, 45000)
    voided = term.void_completion(done, 45000)
    assert reversal_of(term, voided)["39"] == "00"
    assert (_state(term, done["37"]), _state(term, preauth["37"])) == ("approved", "completed")
    balances = term.svc.balances()
    assert balances["pending_holds"] == {"CNY": 0}
    assert balances["merchant_payable:MERCHANT0000001"] == {"CNY": -45000}
    assert term.svc.verify()["ok"]
