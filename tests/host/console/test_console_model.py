"""The console's pure model: T-accounts from hello + postings, the calendar strip, the board,
amounts, the ladder's backfill."""

from __future__ import annotations

from datetime import date

from host.console.model import (
    CURRENT,
    DONE,
    FAILED,
    SKIPPED,
    Ladder,
    TAccounts,
    calendar_days,
    money,
    refund_board,
)

CN = {"country": "CN", "subdivision": None, "timezone": "Asia/Shanghai"}


def _posting(group: int, amount: int) -> dict[str, object]:
    return {"group": group, "kind": "sale", "currency": "CNY", "entries": [
        {"account": "scheme_settlement", "side": "D", "amount_minor": amount},
        {"account": "merchant_payable:M1", "side": "C", "amount_minor": amount}]}


def test_postings_the_hello_already_counts_are_not_applied_twice() -> None:
    """A posting at or below ledger_head is in the opening balance; one before the hello waits."""
    accounts = TAccounts()
    assert not accounts.post(_posting(3, 500))  # before the hello: held
    accounts.hello({"scheme_settlement": {"CNY": 1000}, "merchant_payable:M1": {"CNY": -1000}},
                   head=2)
    assert accounts.post(_posting(4, 200))
    assert not accounts.post(_posting(4, 200))  # a repeat of what is already applied
    payable = accounts.accounts[("merchant_payable:M1", "CNY")]
    assert payable.opening_minor == -1000 and payable.balance_minor == -1700
    assert [line.balance_minor for line in payable.lines] == [-1500, -1700]
    assert [a.account for a in accounts.ordered()] == ["merchant_payable:M1",
                                                        "scheme_settlement"]


def test_the_calendar_strip_knows_holidays_and_make_up_workdays() -> None:
    """China: Labour Day is a holiday; Saturday 2026-02-28 is a make-up workday."""
    labour = calendar_days(CN, "2026-04-30T16:30:00+00:00", 3)  # 05-01 00:30 in Shanghai
    assert labour[0].day == date(2026, 5, 1) and not labour[0].business
    assert labour[0].label.startswith("holiday:")
    makeup = calendar_days(CN, "2026-02-28T02:00:00+00:00", 1)[0]
    assert makeup.business and makeup.label == "make-up workday"
    assert calendar_days({"country": "XX", "timezone": "UTC"}, "2026-01-01T00:00:00Z") == []


def test_a_declined_refund_fails_the_first_stage_and_nothing_is_current() -> None:
    """A refund the host declined: original verification failed, no later stage current."""
    sale = {"rrn": "1", "response_code": "00", "amount_minor": 100, "currency": "CNY"}
    refund = {"rrn": "2", "response_code": "13", "rule": "REFUND_EXCEEDS_REMAINING",
              "amount_minor": 500, "currency": "CNY"}
    board = refund_board(sale, refund)
    assert board[0].state == FAILED and "REFUND_EXCEEDS_REMAINING" in board[0].detail
    assert board[2].state == SKIPPED and CURRENT not in [s.state for s in board]


def test_an_approved_refund_without_review_waits_for_the_batch() -> None:
    """No review needed: that stage is skipped, processed is done and says the amount, the
    card and the refund's own fee under the merchant's policy; settlement is current."""
    sale = {"rrn": "1", "response_code": "00", "amount_minor": 2000, "currency": "USD",
            "pan": "411111******1111"}
    refund = {"rrn": "2", "response_code": "00", "capture_state": "APPROVED",
              "amount_minor": 1200, "currency": "USD", "at": "2026-03-02T02:00:00Z",
              "fee_minor": 30, "fee_policy": "per_refund_fee"}
    board = refund_board(sale, refund)
    assert [s.state for s in board] == [DONE, DONE, SKIPPED, DONE, CURRENT, "waiting", "waiting"]
    assert board[3].detail == "12.00 USD back to 411111******1111, fee 0.30 USD (per-refund fee)"
    given_back = refund_board(sale, {**refund, "fee_minor": -7, "fee_policy": "refund_mdr_prorata"})
    assert given_back[3].detail.endswith(", fee -0.07 USD (MDR returned pro rata)")


def test_amounts_show_the_currency_letters_and_its_minor_units() -> None:
    """DE49's numeric code or the letters give 12.50 USD; yen have no decimals, dinars three;
    an unknown code is shown as it came, without guessing decimals."""
    assert money(1250, "840") == money(1250, "USD") == "12.50 USD"
    assert money(1250, "392") == "1250 JPY" and money(1250, "048") == "1.250 BHD"
    assert money(1250, "999") == "1250 999" and money(None, "840") == ""


def test_backfill_puts_recorded_messages_first_and_skips_those_seen_live() -> None:
    """Transactions read back go before the live rungs, oldest first, request then answer;
    a message the stream already delivered is not repeated."""
    def txn(stan: str, rrn: str) -> dict[str, object]:
        return {"rrn": rrn, "kind": "sale", "mti": "0200", "processing_code": "000000",
                "stan": stan, "terminal_id": "T1", "merchant_id": "M1", "amount_minor": 500,
                "currency": "USD", "pan": "411111******1111", "at": "2026-03-02T02:00:00Z",
                "response_code": "00", "rule": None, "approval_code": "A1"}

    ladder = Ladder()
    ladder.add(7, {"direction": "out", "mti": "0210", "txn_type": "sale", "stan": "000003",
                   "tid": "T1", "rrn": "R3", "amount_minor": 500, "currency": "840"})
    added = ladder.backfill([txn("000003", "R3"), txn("000002", "R2")])  # newest first
    assert [(r.stan, r.direction, r.mti) for r in ladder.rungs] == [
        ("000002", "in", "0200"), ("000002", "out", "0210"), ("000003", "in", "0200"),
        ("000003", "out", "0210")]
    assert len(added) == 3 and ladder.rungs[3].id == 7 and all(r.id < 0 for r in added)
    assert {r.amount for r in ladder.rungs} == {"5.00 USD"}
