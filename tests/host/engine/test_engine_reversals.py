"""Duplicates, reversals in every arrival order, tombstones, reviews and terminal batches."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from host.clock import ManualClock
from host.errors import Conflict, Invalid, NotFound
from host.service import HostService

from .conftest import MID, Term, config_with, rc

PAYABLE = "merchant_payable:" + MID


def net(service: HostService) -> int:
    """The merchant's payable balance (0 when nothing is effective)."""
    return service.balances().get(PAYABLE, {}).get("CNY", 0)


def test_exact_duplicate_replays_identically(term: Term, service: HostService) -> None:
    """The same request again gets the identical response and changes nothing."""
    req = term.sale(1000)
    first = term.send(req)
    groups = service.health()["posting_groups"]
    for _ in range(3):
        again = term.send(dict(req))
        assert again.response == first.response
        assert again.response is not None and first.response is not None
        assert again.response.to_fields() == first.response.to_fields()
        assert again.log["replayed"] is True
    assert service.health()["posting_groups"] == groups and len(service.transactions()) == 1


def test_duplicate_of_declined_request_replays_the_decline(term: Term) -> None:
    """A retransmitted declined refund gets the same decline even after the sale exists."""
    req = term.refund(100, "000000000001")
    assert rc(term.send(req)) == ("25", "ORIGINAL_NOT_FOUND")
    term.approved_sale(1000)  # now RRN 000000000002 exists; the replay must not change
    assert rc(term.send(dict(req))) == ("25", "ORIGINAL_NOT_FOUND")


@pytest.mark.parametrize("change", [("4", "000000000999"), ("2", "5555555555554444"),
                                    ("49", "840"), ("3", "200000")])
def test_same_key_different_content_is_94(term: Term, service: HostService,
                                          change: tuple[str, str]) -> None:
    """Same (MTI class, TID, STAN, DE7) with other content gets 94 and books nothing."""
    req = term.sale(1000)
    term.send(req)
    before = service.balances()
    other = dict(req)
    other[change[0]] = change[1]
    assert rc(term.send(other)) == ("94", "DUPLICATE_DIFFERENT")
    assert service.balances() == before and len(service.transactions()) == 1


def test_duplicate_key_falls_back_to_local_time(term: Term) -> None:
    """Without DE7 the key uses DE13+DE12, so a retransmission is still recognised."""
    req = term.sale(1000)
    del req["7"]
    first = term.send(req)
    assert term.send(dict(req)).response == first.response
    changed = dict(req, **{"4": "000000000001"})
    assert rc(term.send(changed)) == ("94", "DUPLICATE_DIFFERENT")


ORDERS = list(itertools.permutations(["sale", "0400", "0401", "sale_repeat"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_reversal_every_arrival_order(make_service: Callable[..., HostService],
                                      clock: ManualClock, order: tuple[str, ...]) -> None:
    """Whatever the order of sale, 0400, 0401 and a sale repeat, the net effect is 0."""
    service = make_service()
    term = Term(service, clock)
    sale = term.sale(1000)
    msgs = {"sale": sale, "sale_repeat": dict(sale), "0400": term.reversal(sale),
            "0401": term.reversal(sale, repeat=True)}
    for name in order:
        reply = term.send(msgs[name])
        assert reply.response is not None
        if name.startswith("04"):
            assert reply.response.response_code == "00"
    assert net(service) == 0
    report = service.verify()
    assert report["ok"], report["violations"]
    groups = service.health()["posting_groups"]
    assert groups in (0, 2)  # nothing, or one posting and its one mirror
    sale_rows = [t for t in service.transactions() if t["kind"] == "sale"]
    assert len(sale_rows) == 1 and sale_rows[0]["state"] in ("reversed", "declined")


def test_unknown_reversal_leaves_tombstone(term: Term, service: HostService) -> None:
    """0400 for an unseen sale: 00 REVERSAL_UNKNOWN, no entries; the late sale is declined."""
    sale = term.sale(1000)
    assert rc(term.send(term.reversal(sale))) == ("00", "REVERSAL_UNKNOWN")
    assert service.balances() == {}
    assert rc(term.send(sale)) == ("12", "REVERSED_BEFORE_ARRIVAL")
    assert service.balances() == {} and service.verify()["ok"]


def test_unknown_reversal_reply_25_when_configured(make_service: Callable[..., HostService],
                                                   clock: ManualClock) -> None:
    """[reversal] unknown_original_reply = "25" answers 25 but still leaves the tombstone."""
    term = Term(make_service(config_with(reversal={"unknown_original_reply": "25"})), clock)
    sale = term.sale(1000)
    assert rc(term.send(term.reversal(sale))) == ("25", "ORIGINAL_NOT_FOUND")
    assert rc(term.send(sale)) == ("12", "REVERSED_BEFORE_ARRIVAL")


def test_reversal_of_refund_restores_refundable(term: Term, service: HostService) -> None:
    """Reversing a refund gives its amount back; a repeat reverses nothing more."""
    rrn = term.approved_sale(1000)
    refund = term.refund(600, rrn)
    assert rc(term.send(refund)) == ("00", None)
    assert rc(term.send(term.refund(600, rrn))) == ("13", "REFUND_EXCEEDS_REMAINING")
    assert rc(term.send(term.reversal(refund))) == ("00", None)
    assert rc(term.send(term.reversal(refund, repeat=True))) == ("00", None)
    assert service.transaction(rrn)["remaining_minor"] == 1000  # type: ignore[index]
    assert rc(term.send(term.refund(1000, rrn))) == ("00", None)
    assert net(service) == 0 and service.verify()["ok"]


def test_reversal_of_void_restores_the_sale(term: Term, service: HostService) -> None:
    """Reversing a void makes the sale effective (and refundable) again."""
    rrn = term.approved_sale(1000)
    void = term.void(rrn, 1000)
    assert rc(term.send(void)) == ("00", None)
    assert net(service) == 0
    assert rc(term.send(term.reversal(void))) == ("00", None)
    assert net(service) == -1000
    sale = service.transaction(rrn)
    assert sale is not None and sale["capture_state"] == "CAPTURED"
    assert rc(term.send(term.refund(1000, rrn))) == ("00", None)
    assert service.verify()["ok"]


def test_reversal_refused_for_sale_with_refunds(term: Term, service: HostService) -> None:
    """A sale with effective refunds cannot be reversed (the refunds would exceed nothing)."""
    sale = term.sale(1000)
    rrn = term.send(sale).response.rrn  # type: ignore[union-attr]
    term.send(term.refund(100, rrn))
    assert rc(term.send(term.reversal(sale))) == ("12", "REVERSAL_AFTER_REFUND")
    assert service.verify()["ok"]


def test_reversal_of_hold_cancels_it(term: Term, service: HostService) -> None:
    """0400 of an authorization releases the hold."""
    auth = term.auth(700)
    term.send(auth)
    assert rc(term.send(term.reversal(auth))) == ("00", None)
    assert service.balances()["pending_holds"]["CNY"] == 0
    assert service.transactions()[0]["capture_state"] == "CANCELLED"


# -- reviews -------------------------------------------------------------------------------


@pytest.fixture
def review_term(make_service: Callable[..., HostService], clock: ManualClock) -> Term:
    """A terminal of a merchant reviewing refunds above 100.00 and double-checking above 500.00."""
    cfg = config_with(refund={"review_amount_minor": 10000,
                              "second_approval_amount_minor": 50000})
    return Term(make_service(cfg), clock)


def test_review_one_approver(review_term: Term) -> None:
    """Above the review amount: 00 REFUND_PENDING_REVIEW, held until one approval."""
    svc = review_term.service
    rrn = review_term.approved_sale(100000)
    assert rc(review_term.send(review_term.refund(20000, rrn))) == ("00", "REFUND_PENDING_REVIEW")
    assert svc.balances()["refunds_under_review"]["CNY"] == -20000
    (review,) = svc.reviews("pending_review")
    assert review["level"] == 1 and review["amount_minor"] == 20000
    done = svc.approve_review(review["id"], "alice", "receipt checked")
    assert done["state"] == "approved" and done["approved_by"][0]["approver"] == "alice"
    assert svc.balances()["refunds_under_review"]["CNY"] == 0
    with pytest.raises(Conflict):
        svc.approve_review(review["id"], "bob")
    assert svc.verify()["ok"]


def test_review_two_distinct_approvers(review_term: Term) -> None:
    """Above the second amount two different approvers are needed; the same one twice is 409."""
    svc = review_term.service
    rrn = review_term.approved_sale(100000)
    review_term.send(review_term.refund(60000, rrn))
    (review,) = svc.reviews()
    assert review["level"] == 2
    assert svc.approve_review(review["id"], "alice")["state"] == "pending_review"
    with pytest.raises(Conflict):
        svc.approve_review(review["id"], "alice")
    assert svc.approve_review(review["id"], "bob")["state"] == "approved"


def test_review_rejection_reverses_the_refund(review_term: Term) -> None:
    """A rejected refund is mirrored in the ledger with its reason; the sale is whole again."""
    svc = review_term.service
    rrn = review_term.approved_sale(100000)
    reply = review_term.send(review_term.refund(20000, rrn))
    (review,) = svc.reviews()
    out = svc.reject_review(review["id"], "carol", "no receipt")
    assert out["state"] == "rejected" and out["reason"] == "no receipt"
    refund = svc.transaction(reply.response.rrn)  # type: ignore[union-attr, arg-type]
    assert refund is not None and refund["state"] == "rejected"
    assert any("no receipt" in g["memo"] for g in refund["ledger"])
    assert svc.transaction(rrn)["remaining_minor"] == 100000  # type: ignore[index]
    assert svc.balances()["refunds_under_review"]["CNY"] == 0
    assert svc.verify()["ok"]


def test_review_admin_errors(review_term: Term) -> None:
    """Unknown review: NotFound; missing approver or reason: Invalid (404 and 400 over HTTP)."""
    svc = review_term.service
    with pytest.raises(NotFound):
        svc.approve_review(99, "alice")
    with pytest.raises(Invalid):
        svc.approve_review(1, " ")
    with pytest.raises(Invalid):
        svc.reject_review(1, "alice", "")


# -- batches -------------------------------------------------------------------------------


def test_batch_close_balanced_mismatch_upload_and_repeat(term: Term,
                                                         service: HostService) -> None:
    """0500 equal -> 00 and closed; different -> 95; 0320 -> 0330; 960000 closes; repeats idem."""
    rrn = term.approved_sale(1000)
    term.approved_sale(500)
    term.send(term.refund(200, rrn))
    wrong = term.settle("000001", (2, 1400), (1, 200))
    reply = term.send(wrong)
    assert rc(reply) == ("95", "RECONCILE_MISMATCH")
    host_totals = reply.response.totals  # type: ignore[union-attr]
    assert (host_totals.debits_count, host_totals.debits_minor) == (2, 1500)
    from protocol.messages import BatchUploadRequest
    from protocol.money import Money

    upload = BatchUploadRequest(stan=term.next_stan(), terminal_id=term.tid,
                                merchant_id=term.mid, transmitted_at=term.de7(),
                                batch_number="000001", processing_code="000000",
                                amount=Money(1000, "CNY"), rrn=rrn).to_fields()
    up = term.send(upload)
    assert rc(up) == ("00", None) and up.response is not None and up.response.mti == "0330"
    close = term.settle("000001", (2, 1400), (1, 200), after_upload=True)
    assert rc(term.send(close)) == ("00", None)
    assert term.send(dict(close)).response == term.send(dict(close)).response
    sale = service.transaction(rrn)
    assert sale is not None and sale["settlement_state"] == "CLOSED_BATCH"
    again = term.settle("000001", (2, 1500), (1, 200))
    assert rc(term.send(again)) == ("00", None)  # the closed batch's totals agree
    new_rrn = term.approved_sale(300)
    assert service.transaction(new_rrn)["settlement_state"] == "OPEN_BATCH"  # type: ignore[index]
    assert service.verify()["ok"]


def test_batch_close_balanced(term: Term, service: HostService) -> None:
    """Matching totals close the batch at once with 00."""
    term.approved_sale(1000)
    reply = term.send(term.settle("000001", (1, 1000), (0, 0)))
    assert rc(reply) == ("00", None) and reply.response is not None
    assert reply.response.mti == "0510"
