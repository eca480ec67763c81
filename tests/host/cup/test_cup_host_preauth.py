"""The CUP host completes pre-authorizations (0100 / 030000 / 06 / 10, then 0200 / 000000 / 06 /
20): the completion's DE61 names the pre-authorization by batch, trace and date, its DE38 quotes
the pre-authorization's approval code, and the generic completion rules decide, on each
backend."""

from __future__ import annotations

from cup_terminal import CupTerminal, reversal_of


def _code(answer: dict[str, str]) -> tuple[str, str | None]:
    return answer["39"], answer.get("44")


def _state(term: CupTerminal, rrn: str) -> str:
    return next(t["state"] for t in term.svc.transactions(tid=term.tid) if t["rrn"] == rrn)


def test_completion_captures_the_preauthorization(term: CupTerminal) -> None:
    """A completion within the held amount is 0210 00 echoing DE38 and DE61; the hold is
    released and the completed amount captured."""
    preauth = term.preauth(50000)
    assert _code(preauth) == ("00", None)
    done = term.completion(preauth, 45000)
    assert (done["t"], *_code(done)) == ("0210", "00", None)
    assert done["38"] == preauth["38"]
    assert done["61"] == f"{preauth['60'][2:8]}{preauth['11']}{preauth['13']}"
    assert _state(term, preauth["37"]) == "completed"
    balances = term.svc.balances()
    assert balances["pending_holds"] == {"CNY": 0}
    assert balances["merchant_payable:MERCHANT0000001"] == {"CNY": -45000}
    assert term.svc.verify()["ok"]


def test_completion_naming_no_preauthorization_is_25(term: CupTerminal) -> None:
    """DE61 with another trace or batch, or naming a sale, is 25 ORIGINAL_NOT_FOUND:DE61; the
    hold stays open."""
    preauth = term.preauth(50000)
    sale = term.sale(1000)
    for answer in (term.completion(preauth, 100, trace="999999"),
                   term.completion(preauth, 100, batch="000009"),
                   term.completion(sale, 100)):
        assert _code(answer) == ("25", "ORIGINAL_NOT_FOUND:DE61")
        assert "38" not in answer
        # the decline is linked to no transaction, although DE38 quotes the pre-auth's code
        assert term.svc.transaction(answer["37"])["original_rrn"] is None
    assert _state(term, preauth["37"]) == "authorized"
    assert term.svc.balances()["pending_holds"] == {"CNY": 50000}


def test_completion_with_another_approval_code_is_25_with_the_rule(term: CupTerminal) -> None:
    """DE38 that is not the named pre-authorization's code is 25 ORIGINAL_NOT_FOUND:DE38;
    with its code the completion is approved."""
    preauth = term.preauth(50000)
    wrong = "999999" if preauth["38"] != "999999" else "999998"
    assert _code(term.completion(preauth, 100, code=wrong)) == ("25", "ORIGINAL_NOT_FOUND:DE38")
    assert _state(term, preauth["37"]) == "authorized"
    assert _code(term.completion(preauth, 100))[0] == "00"


def test_completion_with_another_date_is_25(term: CupTerminal) -> None:
    """61.3 that is not the pre-authorization's date is 25 ORIGINAL_NOT_FOUND:DATE."""
    preauth = term.preauth(50000)
    assert _code(term.completion(preauth, 100, mmdd="0101")) == (
        "25", "ORIGINAL_NOT_FOUND:DATE")


def test_completion_above_the_held_amount_is_64(term: CupTerminal) -> None:
    """More than the pre-authorized amount is the generic COMPLETION_EXCEEDS_AUTH (64); the
    whole amount then completes."""
    preauth = term.preauth(50000)
    assert _code(term.completion(preauth, 50001)) == ("64", "COMPLETION_EXCEEDS_AUTH")
    assert _code(term.completion(preauth, 50000))[0] == "00"


def test_second_completion_of_one_preauthorization_is_25(term: CupTerminal) -> None:
    """A pre-authorization completes once: another completion is 25 ORIGINAL_NOT_EFFECTIVE and
    captures nothing more."""
    preauth = term.preauth(50000)
    assert _code(term.completion(preauth, 20000))[0] == "00"
    assert _code(term.completion(preauth, 20000)) == ("25", "ORIGINAL_NOT_EFFECTIVE")
    assert term.svc.balances()["merchant_payable:MERCHANT0000001"] == {"CNY": -20000}


def _payable(term: CupTerminal) -> dict[str, int]:
    return term.svc.balances()["merchant_payable:MERCHANT0000001"]


def test_completion_advice_captures_the_preauthorization(term: CupTerminal) -> None:
    """The offline completion 0220 / 000000 / 06 / 24 books as the completion request does:
    0230 00 echoing DE38 and DE61, the hold released and the amount captured."""
    preauth = term.preauth(50000)
    done = term.completion(preauth, 45000, advice=True)
    assert (done["t"], *_code(done)) == ("0230", "00", None)
    assert done["38"] == preauth["38"]
    assert done["61"] == f"{preauth['60'][2:8]}{preauth['11']}{preauth['13']}"
    assert _state(term, preauth["37"]) == "completed"
    assert term.svc.balances()["pending_holds"] == {"CNY": 0}
    assert _payable(term) == {"CNY": -45000}
    assert term.svc.verify()["ok"]


def test_completion_advice_names_its_preauthorization_like_the_request(
        term: CupTerminal) -> None:
    """The advice's DE61 and DE38 are checked as the request's: another trace is 25
    ORIGINAL_NOT_FOUND:DE61, another code 25 ORIGINAL_NOT_FOUND:DE38; nothing is captured."""
    preauth = term.preauth(50000)
    wrong = "999999" if preauth["38"] != "999999" else "999998"
    assert _code(term.completion(preauth, 100, trace="999999", advice=True)) == (
        "25", "ORIGINAL_NOT_FOUND:DE61")
    assert _code(term.completion(preauth, 100, code=wrong, advice=True)) == (
        "25", "ORIGINAL_NOT_FOUND:DE38")
    assert _state(term, preauth["37"]) == "authorized"


def test_repeated_completion_advice_is_answered_from_the_request_log(
        term: CupTerminal) -> None:
    """The same advice sent again (same trace and batch) gets the first answer again and
    captures nothing more; the same trace with another amount is 94."""
    preauth = term.preauth(50000)
    first = term.completion(preauth, 45000, advice=True, stan="000700")
    again = term.completion(preauth, 45000, advice=True, stan="000700")
    assert again == first and first["39"] == "00"
    assert _payable(term) == {"CNY": -45000}
    completions = [t for t in term.svc.transactions(tid=term.tid) if t["kind"] == "completion"]
    assert len(completions) == 1
    assert _code(term.completion(preauth, 40000, advice=True, stan="000700"))[0] == "94"


def test_reversal_does_not_undo_a_completion_advice(term: CupTerminal) -> None:
    """An 0400 naming the advice's trace is 25 ORIGINAL_NOT_A_SALE:0220 (an advice is not
    reversed, as the refund 0220): the capture stands; an 0400 of a completion request (0200)
    reverses it and the hold is live again."""
    advised = term.completion(term.preauth(50000), 45000, advice=True)
    kept = reversal_of(term, advised)
    assert (kept["t"], *_code(kept)) == ("0410", "25", "ORIGINAL_NOT_A_SALE:0220")
    assert term.svc.transaction(advised["37"])["state"] == "approved"
    assert _payable(term) == {"CNY": -45000}
    preauth = term.preauth(30000)
    requested = term.completion(preauth, 30000)
    assert _code(reversal_of(term, requested)) == ("00", None)
    assert _state(term, preauth["37"]) == "authorized"
    assert _payable(term) == {"CNY": -45000}
    assert term.svc.verify()["ok"]
