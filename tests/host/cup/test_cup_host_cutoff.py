"""CUP voids and refunds across the settlement cut-off: the cut-off closes the sale's batch
without a settlement, the terminal keeps its batch number, and a void of the sale is then the
settled-original decline (25 VOID_AFTER_SETTLEMENT, CUP's 不支持隔日撤销), not a DE61
mismatch; a refund of it is approved."""

from __future__ import annotations

from datetime import UTC, datetime

from cup_terminal import CupTerminal

# ``term``: TERM0001 signed on to a fresh CUP host on each backend at 10:00 in Shanghai, its
# clock simulated (conftest.py).
AFTER_CUTOFF = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)  # 23:30 in Shanghai


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
