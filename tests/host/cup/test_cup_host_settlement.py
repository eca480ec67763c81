"""CUP settlement on the host: the 0500 totals counted the CUP way, result flag 1 (balanced:
the batch closes) or 2 (not: the host's totals, then the 0320 upload and its closing 207), and
the batch number the next sign-on gives."""

from __future__ import annotations

from types import SimpleNamespace

from cup_terminal import UNIONPAY, VISA, CupTerminal, totals_text

from host.cup.batch import cup_totals, next_batch
from protocol.cup_private import CupTotals, SchemeTotals, UploadRecord, upload_text

# ``term``: TERM0001 signed on to a fresh CUP host on each backend (conftest.py).


def _day(term: CupTerminal) -> None:
    """A UnionPay sale 100.00 partly refunded (30.00), a foreign sale 50.00 voided."""
    sale = term.sale(10000)
    assert term.refund(sale, 3000)["39"] == "00"
    foreign = term.sale(5000, pan=VISA)
    assert term.void(foreign, 5000, pan=VISA)["39"] == "00"


def _settle(term: CupTerminal, totals: str, stan: str | None = None) -> dict[str, str]:
    return term.send({"t": "0500", "11": stan or term.stan(), "48": totals, "49": "156",
                      "60": f"00{term.batch}201", "63": "01 "})


OURS = totals_text((10000, 1), (3000, 1), (5000, 1), (5000, 1))


def _events(term: CupTerminal, kind: str) -> list[dict[str, object]]:
    rows = term.svc.transactions(tid=term.tid)
    return [e for r in rows for e in term.svc.transaction(r["rrn"])["events"]
            if e["kind"] == kind]


def test_voided_and_refunded_sales_still_count_as_debits() -> None:
    """Debits are every approved sale, voided or refunded later too; credits refunds and
    voids; reversed and declined rows nothing; BIN 62 is domestic."""
    rows = [SimpleNamespace(kind=k, state=s, amount_minor=a, pan_masked=p) for k, s, a, p in [
        ("sale", "approved", 10000, "621234******1232"), ("refund", "approved", 3000, "6212"),
        ("sale", "voided", 5000, "411111******1111"), ("void", "approved", 5000, "4111"),
        ("sale", "reversed", 700, "6212"), ("sale", "declined", 900, "6212"),
        ("void", "reversed", 100, "6212")]]
    assert cup_totals(rows) == CupTotals(SchemeTotals(10000, 1, 3000, 1),
                                         SchemeTotals(5000, 1, 5000, 1))


def test_batch_numbers_follow_the_terminal() -> None:
    """The batch after a closed one is one more, wrapping after 999999; 000001 to start."""
    assert [next_batch(None), next_batch("000041"), next_batch("999999"),
            next_batch("B17")] == ["000001", "000042", "000001", "000001"]


def test_balanced_totals_close_the_batch_with_flag_1(term: CupTerminal) -> None:
    """Equal totals: 0510 DE39 00 echoing the terminal's totals with flag 1; the batch
    closes, and the next sign-on gives batch 000002."""
    _day(term)
    answer = _settle(term, OURS)
    assert (answer["t"], answer["39"]) == ("0510", "00")
    assert answer["48"] == totals_text((10000, 1), (3000, 1), (5000, 1), (5000, 1), flag="1")
    states = {r["settlement_state"] for r in term.svc.transactions(tid=term.tid)}
    assert states == {"CLOSED_BATCH"}
    assert term.sign_on()["60"] == "00000002004"
    assert term.sale(100)["39"] == "00"  # the new batch is the one signed on


def test_unbalanced_totals_answer_the_hosts_with_flag_2_then_upload_closes(
        term: CupTerminal) -> None:
    """Different totals: 0510 00 with the host's totals and flag 2, the batch stays open; the
    0320 records are matched against it and the closing 207 closes it."""
    _day(term)
    answer = _settle(term, totals_text((10000, 1), (0, 0)))
    assert answer["39"] == "00"
    assert answer["48"] == totals_text((10000, 1), (3000, 1), (5000, 1), (5000, 1), flag="2")
    assert term.sign_on()["60"][2:8] == "000001"  # still open
    assert {r["settlement_state"] for r in term.svc.transactions(tid=term.tid)} == {
        "OPEN_BATCH"}
    records = [UploadRecord(False, "000002", UNIONPAY, 10000),
               UploadRecord(True, "000004", VISA, 4999)]
    up = term.send({"t": "0320", "48": upload_text(records), "60": f"00{term.batch}201"})
    assert (up["t"], up["39"]) == ("0330", "00")
    matches = {e["trace"]: e["matches"] for e in _events(term, "uploaded")}
    assert matches == {"000002": True, "000004": False}
    end = term.send({"t": "0320", "48": "0002", "60": f"00{term.batch}207"})
    assert end["39"] == "00"
    assert {r["settlement_state"] for r in term.svc.transactions(tid=term.tid)} == {
        "CLOSED_BATCH"}
    assert term.sign_on()["60"][2:8] == "000002"


def test_repeated_settlement_gets_its_answer_again(term: CupTerminal) -> None:
    """An 0500 sent again after it closed the batch (its answer lost) gets the same 0510, not
    77 for naming the closed batch; the same trace with other totals is 94."""
    _day(term)
    first = _settle(term, OURS, stan="000500")
    assert _settle(term, OURS, stan="000500") == first
    assert _settle(term, totals_text((1, 1), (0, 0)), stan="000500")["39"] == "94"
    assert _settle(term, OURS)["39"] == "77"  # a new 0500 for the closed batch


def test_completion_void_is_a_credit_and_preauthorizations_count_for_nothing(
        term: CupTerminal) -> None:
    """A voided completion stays a debit and its void is a credit; a completion advice is a
    debit; open, cancelled and voided-then-live pre-authorizations are in no total. The host's
    totals say so (flag 2 to wrong totals), and the terminal's equal totals balance (flag 1)."""
    done = term.completion(term.preauth(50000), 45000)
    assert term.void_completion(done, 45000)["39"] == "00"
    assert term.cancel(term.preauth(20000))["39"] == "00"
    term.preauth(30000)  # still open
    assert term.completion(term.preauth(10000), 10000, advice=True)["39"] == "00"
    wrong = _settle(term, totals_text((55000, 2), (65000, 2)))
    assert wrong["48"] == totals_text((55000, 2), (45000, 1), flag="2")
    answer = _settle(term, totals_text((55000, 2), (45000, 1)))
    assert answer["48"] == totals_text((55000, 2), (45000, 1), flag="1")
    assert term.sign_on()["60"][2:8] == "000002"
    assert term.svc.verify()["ok"]
