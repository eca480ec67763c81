"""CUP voids, refunds and settlement across the settlement cut-off: the cut-off closes the
sale's batch without a settlement, the terminal keeps its batch number, and a void of the sale
is then the settled-original decline (25 VOID_AFTER_SETTLEMENT, CUP's 不支持隔日撤销), not a
DE61 mismatch; a refund of it is approved. The terminal's 0500 settles its batch number: the
batches the cut-off closed under it and the open one, compared as one."""

from __future__ import annotations

from datetime import UTC, datetime

from cup_terminal import UNIONPAY, CupTerminal, totals_text

from protocol.cup_private import UploadRecord, upload_text

# ``term``: TERM0001 signed on to a fresh CUP host on each backend at 10:00 in Shanghai, its
# clock simulated (conftest.py).
AFTER_CUTOFF = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai
NEXT_CUTOFF = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)  # a day later


def _past_cutoff(term: CupTerminal) -> None:
    term.svc.clock.set(AFTER_CUTOFF)


def test_void_after_the_cutoff_is_25_void_after_settlement(term: CupTerminal) -> None:
    """A void naming the right DE61 (batch and trace) of a sale the cut-off settled is 25 with
    DE44 VOID_AFTER_SETTLEMENT; a refund of the sale is then approved."""
    sale = term.sale(7000)
    _past_cutoff(term)
    assert term.sign_on()["60"][2:8] == term.batch == "000001"  # the cut-off is no 0500
    void = term.void(sale, 7000)
    assert (void["39"], void.get("44")) == ("25", "VOID_AFTER_SETTLEMENT")
    assert term.refund(sale, 7000)["39"] == "00"


def test_void_after_the_cutoff_with_a_wrong_de61_batch_is_still_not_found(
        term: CupTerminal) -> None:
    """The closed batch keeps the number the terminal used for it: a void naming another
    batch in 61.1 is 25 ORIGINAL_NOT_FOUND:DE61, not the settled-original decline."""
    sale = term.sale(7000)
    _past_cutoff(term)
    wrong = term.send({"t": "0200", "2": "6212345678901232", "3": "200000",
                       "4": "000000007000", "22": "012", "25": "00", "37": sale["37"],
                       "49": "156", "60": f"23{term.batch}000",
                       "61": f"000007{sale['11']}"})
    assert (wrong["39"], wrong.get("44")) == ("25", "ORIGINAL_NOT_FOUND:DE61")


def test_void_in_the_batch_after_a_cutoff_names_the_same_number(term: CupTerminal) -> None:
    """After the cut-off the terminal still works in batch 000001: a sale made then and voided
    at once (its batch open) is approved."""
    term.sale(100)
    _past_cutoff(term)
    sale = term.sale(2500)
    assert sale["39"] == "00"
    assert term.void(sale, 2500)["39"] == "00"


def _settle(term: CupTerminal, totals: str) -> dict[str, str]:
    return term.send({"t": "0500", "48": totals, "49": "156", "60": f"00{term.batch}201",
                      "63": "01 "})


def test_settlement_after_the_cutoff_counts_the_closed_batch_under_its_number(
        term: CupTerminal) -> None:
    """A sale before the cut-off and one after it are one terminal batch (000001): the 0500
    with both is balanced (flag 1), and the next sign-on gives 000002."""
    term.sale(7000)
    _past_cutoff(term)
    term.sale(2500)
    answer = _settle(term, totals_text((9500, 2), (0, 0)))
    assert (answer["39"], answer["48"][-1]) == ("00", "1")
    assert term.sign_on()["60"][2:8] == "000002"
    assert term.sale(100)["39"] == "00"


def test_settlement_of_a_batch_the_cutoff_closed_whole_moves_to_the_next_number(
        term: CupTerminal) -> None:
    """With nothing after the cut-off, the 0500 of the sale's batch is balanced against the
    batch the cut-off closed, and the host's next batch number is 000002 (the terminal's
    too), so the next sale is not refused 77."""
    term.sale(7000)
    _past_cutoff(term)
    answer = _settle(term, totals_text((7000, 1), (0, 0)))
    assert answer["48"] == totals_text((7000, 1), (0, 0), flag="1")
    term.batch = "000002"  # the terminal opens the next batch after a settlement
    assert term.sale(100)["39"] == "00"
    term.svc.clock.set(NEXT_CUTOFF)
    assert term.svc.verify()["ok"]  # the empty batch that took the number upsets nothing


def test_unbalanced_settlement_after_the_cutoff_uploads_against_the_closed_batch(
        term: CupTerminal) -> None:
    """Totals that differ draw the host's totals of the whole batch number (both sides of the
    cut-off) with flag 2; the upload's records are matched against the batch the cut-off
    closed too, and the closing 207 settles the number."""
    before = term.sale(7000)
    _past_cutoff(term)
    after = term.sale(2500)
    answer = _settle(term, totals_text((7000, 1), (0, 0)))
    assert answer["48"] == totals_text((9500, 2), (0, 0), flag="2")
    records = [UploadRecord(False, before["11"], UNIONPAY, 7000),
               UploadRecord(False, after["11"], UNIONPAY, 2500)]
    assert term.send({"t": "0320", "48": upload_text(records),
                      "60": f"00{term.batch}201"})["39"] == "00"
    uploaded = [e for r in term.svc.transactions(tid=term.tid)
                for e in term.svc.transaction(r["rrn"])["events"] if e["kind"] == "uploaded"]
    assert sorted((e["trace"], e["matches"]) for e in uploaded) == [
        (before["11"], True), (after["11"], True)]
    assert term.send({"t": "0320", "48": "0002", "60": f"00{term.batch}207"})["39"] == "00"
    assert term.sign_on()["60"][2:8] == "000002"
