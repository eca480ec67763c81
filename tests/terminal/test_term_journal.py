"""Journal persistence and bookkeeping; receipt rendering (both pure of any network)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from terminal import receipt, times
from terminal.journal import Journal, Txn, TxnKind, TxnStatus

SALE = Txn(seq=0, kind=TxnKind.SALE, stan="000001", batch="000001", amount_minor=10000,
           currency="CNY", processing_code="000000", transmitted_at="0115023000",
           local_time="2026-01-15T10:30:00+08:00", masked_pan="411111******1111",
           card_name="Visa approve", entry_mode="05", status=TxnStatus.APPROVED,
           response_code="00", rrn="000000000001", approval_code="A1B2C3")


def _refund(amount: int, status: TxnStatus = TxnStatus.APPROVED) -> Txn:
    return replace(SALE, kind=TxnKind.REFUND, stan="000002", amount_minor=amount,
                   processing_code="200000", rrn="000000000002", original_rrn="000000000001",
                   reason="return", status=status)


def test_counters_and_lines_survive_reopen(tmp_path: Path) -> None:
    """STAN, batch, business date and lines come back after reopening the file."""
    journal = Journal(tmp_path)
    assert [journal.next_stan(), journal.next_stan()] == ["000001", "000002"]
    journal.add(SALE)
    journal.set_business_date("0115")
    again = Journal(tmp_path)
    assert again.next_stan() == "000003" and again.business_date == "0115"
    assert again.get(1) == replace(SALE, seq=1)


def test_stan_wraps_after_999999(tmp_path: Path) -> None:
    """The trace number wraps from 999999 to 000001, never 000000."""
    journal = Journal(tmp_path)
    journal._state.stan = 999998  # noqa: SLF001 - setting up the edge directly
    assert [journal.next_stan(), journal.next_stan()] == ["999999", "000001"]


def test_remaining_refundable_and_voidable(tmp_path: Path) -> None:
    """Approved refunds reduce what is left; declined ones do not; a refunded sale can no
    longer be voided but its refund can."""
    journal = Journal(tmp_path)
    sale = journal.add(SALE)
    journal.add(_refund(3000))
    journal.add(_refund(9000, TxnStatus.DECLINED))
    assert journal.remaining_minor(sale) == 7000
    assert [t.kind for t in journal.voidable()] == [TxnKind.REFUND]
    assert journal.refundable() == [sale]


def test_void_choices_include_settled_transactions(tmp_path: Path) -> None:
    """After settlement nothing is voidable, but the void list still offers the settled sale
    (marked settled) so the host can refuse it."""
    journal = Journal(tmp_path)
    journal.add(SALE)
    journal.close_batch()
    assert journal.voidable() == []
    [choice] = journal.void_choices()
    assert choice.rrn == SALE.rrn and choice.settled


def test_times_are_the_hosts_in_the_merchant_zone() -> None:
    """A slip's time is the host's DE13/DE12 when given, else DE7 (UTC) in the merchant's
    zone; the machine's zone and the send time recorded on the terminal are not used."""
    shanghai, berlin = times.zone("Asia/Shanghai"), times.zone("Europe/Berlin")
    stamped = replace(SALE, host_date="0314", host_time="180005",
                      local_time="2026-12-03T23:00:00+00:00")
    assert times.when(stamped, shanghai) == "14 Mar 18:00:05"
    # DE7 0115023000 is 02:30 UTC: 10:30 in Shanghai, 03:30 in Berlin.
    unstamped = replace(SALE, local_time="2026-01-15T02:30:00+00:00")
    assert times.when(unstamped, shanghai) == "15 Jan 10:30:00"
    assert times.when(unstamped, berlin) == "15 Jan 03:30:00"
    text = "\n".join(receipt.render(stamped, receipt.Copy.MERCHANT, "M", "T",
                                    timezone="Asia/Shanghai"))
    assert "14 Mar 18:00:05" in text


def test_totals_and_batch_close(tmp_path: Path) -> None:
    """Totals count effective sales and refunds; closing the batch opens the next one."""
    journal = Journal(tmp_path)
    journal.add(SALE)
    journal.add(_refund(2500))
    journal.add(replace(SALE, stan="000003", amount_minor=999, voided=True))
    totals = journal.totals("CNY")
    assert (totals.debits_count, totals.debits_minor, totals.credits_count,
            totals.credits_minor) == (1, 10000, 1, 2500)
    assert journal.close_batch() == "000002"
    assert journal.open_batch() == [] and journal.totals("CNY").debits_count == 0


def test_pending_reversals_listed(tmp_path: Path) -> None:
    """Only unacknowledged reversals are pending."""
    journal = Journal(tmp_path)
    journal.add(replace(SALE, status=TxnStatus.REVERSAL_PENDING))
    journal.add(replace(SALE, stan="000002", status=TxnStatus.REVERSED))
    assert [t.stan for t in journal.pending_reversals()] == ["000001"]


def test_receipt_copies() -> None:
    """The merchant copy has the masked PAN and the cardholder signature line; the customer
    copy shows only the last four digits; a refund says REFUND, its reason and the original."""
    merchant = "\n".join(receipt.render(replace(SALE, seq=1), receipt.Copy.MERCHANT,
                                        "MERCHANT0000001", "TERM0001"))
    customer = "\n".join(receipt.render(replace(SALE, seq=1), receipt.Copy.CUSTOMER,
                                        "MERCHANT0000001", "TERM0001"))
    assert "411111******1111" in merchant and "CARDHOLDER SIGNATURE" in merchant
    assert "**** 1111" in customer and "411111" not in customer
    assert "SIGNATURE" not in customer and "CUSTOMER COPY" in customer
    refund = "\n".join(receipt.render(_refund(3000), receipt.Copy.MERCHANT, "M", "T"))
    assert "REFUND" in refund and "Return" in refund and "000000000001" in refund
    assert "CNY -30.00" in refund and "MERCHANT SIGNATURE" in refund
    assert all(len(line) <= receipt.WIDTH for line in refund.splitlines())


def test_receipt_of_decline_and_no_response() -> None:
    """A decline prints its code, text and explanation; a reversed one says no money moved."""
    declined = replace(_refund(5000, TxnStatus.DECLINED), response_code="13",
                       explanation="Refund exceeds the remaining 40.00 of this sale")
    text = "\n".join(receipt.render(declined, receipt.Copy.MERCHANT, "M", "T"))
    assert "DECLINED 13" in text and "Invalid amount" in text
    assert "remaining 40.00 of this sale" in " ".join(text.split())
    assert "SIGNATURE" not in text
    lost = "\n".join(receipt.render(replace(SALE, status=TxnStatus.REVERSED),
                                    receipt.Copy.CUSTOMER, "M", "T"))
    assert "NO RESPONSE - REVERSED" in lost and "No money has moved" in lost


def test_unanswered_request_from_before_a_crash_becomes_a_pending_reversal(
        tmp_path: Path) -> None:
    """A line still PENDING when the journal is reopened (the terminal died waiting) is
    queued for reversal."""
    Journal(tmp_path).add(replace(SALE, status=TxnStatus.PENDING))
    assert [t.status for t in Journal(tmp_path).pending_reversals()] == [
        TxnStatus.REVERSAL_PENDING]
