"""HostService end to end in-process: each response code and rule id, echoes, card catalogue,
strict mode, terminals and merchants, authorization holds and completions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from host.clock import ManualClock
from host.config import HostConfig
from host.service import HostService
from protocol import NetworkCode, RefundReason
from protocol.messages import FinancialResponse, NetworkResponse
from protocol.private_data import decode_remaining
from protocol.validate import validate_fields

from .conftest import MC, MID, TID, VISA, Term, config_with, rc


def test_sale_response_echoes_and_host_fields(term: Term) -> None:
    """An approved sale echoes DE3/4/11/41/42/49 and carries DE37, DE38, DE39, DE15."""
    req = term.sale(12_50)
    reply = term.send(req)
    assert reply.response is not None
    out = reply.response.to_fields()
    validate_fields(out)
    for key in ("3", "4", "11", "41", "42", "49", "7"):
        assert out[key] == req[key]
    assert out["t"] == "0210" and out["39"] == "00" and "44" not in out
    assert len(out["37"]) == 12 and len(out["38"]) == 6 and out["15"] == "0302"
    assert reply.log["pan"] == "411111******1111" and reply.log["rc"] == "00"


def test_rrns_are_unique_and_survive_restart(make_service: Callable[..., HostService],
                                             clock: ManualClock) -> None:
    """RRNs derive from the database, so a restarted host never reuses one."""
    first = Term(make_service(), clock)
    rrns = {first.approved_sale(100) for _ in range(3)}
    first.service.close()
    second = Term(make_service(), clock)
    second.stan = 100
    rrns |= {second.approved_sale(100) for _ in range(3)}
    assert len(rrns) == 6 and all(len(r) == 12 for r in rrns)


@pytest.mark.parametrize(("pan", "amount", "code", "rule"), [
    ("4111111111111111", 100, "00", None),
    ("5555555555554444", 100, "00", None),
    ("4242424242424242", 100, "00", None),  # not in the catalogue: the default card approves
    ("4000000000000002", 100, "05", "CARD_DECLINED"),
    ("4000000000009995", 10000, "00", None),
    ("4000000000009995", 10001, "51", "INSUFFICIENT_FUNDS"),
    ("4000000000000069", 100, "54", "EXPIRED_CARD"),
    ("4111111111111112", 100, "14", "INVALID_CARD_NUMBER"),
    ("4111111111111111", 0, "13", "ZERO_AMOUNT"),
])
def test_card_catalogue(term: Term, pan: str, amount: int, code: str, rule: str | None) -> None:
    """Each catalogue behaviour gives its response code and rule id."""
    assert rc(term.send(term.sale(amount, pan))) == (code, rule)


def test_no_response_card_books_nothing(term: Term, service: HostService) -> None:
    """A no_response card gets no reply and leaves no transaction or posting behind."""
    reply = term.send(term.sale(100, "4000000000000119"))
    assert reply.response is None and reply.log["note"] == "no_response"
    assert service.transactions() == [] and service.balances() == {}


def test_unknown_terminal_and_merchant(term: Term, service: HostService) -> None:
    """Unknown TID -> 58; known TID with another MID -> 03; nothing is booked."""
    stranger = Term(service, term.clock, tid="NOPE0001")
    assert rc(stranger.send(stranger.sale(100))) == ("58", "UNKNOWN_TERMINAL")
    wrong_mid = Term(service, term.clock, mid="OTHERMERCHANT01")
    assert rc(wrong_mid.send(wrong_mid.sale(100))) == ("03", "UNKNOWN_MERCHANT")
    assert service.transactions() == []


def test_development_mode_enrols_unknown_terminals(make_service: Callable[..., HostService],
                                                   clock: ManualClock) -> None:
    """With allow_unknown_terminals any TID/MID is enrolled with the default profile."""
    svc = make_service(allow_unknown_terminals=True)
    t = Term(svc, clock, tid="NEW00001", mid="NEWMERCHANT0001")
    rrn = t.approved_sale(500)
    assert rc(t.send(t.refund(200, rrn))) == ("00", None)
    other = Term(svc, clock, tid="NEW00001", mid="OTHERMERCHANT01")
    assert rc(other.send(other.sale(100))) == ("03", "UNKNOWN_MERCHANT")


def test_currency_not_accepted(make_service: Callable[..., HostService],
                               clock: ManualClock) -> None:
    """A merchant listing currencies declines others with 12 CURRENCY_NOT_ACCEPTED."""
    cfg = config_with(merchants=[{"id": MID, "terminals": [TID], "currencies": ["CNY"]}])
    t = Term(make_service(cfg), clock)
    assert rc(t.send(t.sale(100, cur="USD"))) == ("12", "CURRENCY_NOT_ACCEPTED")
    assert rc(t.send(t.sale(100, cur="CNY"))) == ("00", None)


def test_strict_mode_names_missing_field(make_service: Callable[..., HostService],
                                         clock: ManualClock) -> None:
    """Strict hosts answer 30 MISSING_FIELD:<n>; lenient ones fill DE7/12/13 from the clock."""
    strict = Term(make_service(strict=True), clock)
    req = strict.sale(100)
    del req["12"]
    reply = strict.send(req)
    assert rc(reply) == ("30", "MISSING_FIELD:12")
    assert reply.response is not None and reply.response.mti == "0210"
    lenient = Term(make_service(), clock)
    req = lenient.sale(100)
    for key in ("7", "12", "13"):
        del req[key]
    reply = lenient.send(req)
    assert rc(reply) == ("00", None)
    assert reply.response is not None and reply.response.transmitted_at == "0302020000"


def test_format_error_reply_and_silence(service: HostService, term: Term) -> None:
    """A parse failure with MTI/STAN/TID readable gets MTI+10 RC 30; otherwise nothing."""
    req = term.sale(100)
    req["3"] = "990000"  # a processing code poslab does not handle
    reply = service.handle(req)
    assert rc(reply) == ("30", "FORMAT_ERROR:3")
    assert reply.response is not None and reply.response.to_fields()["t"] == "0210"
    from protocol.errors import ValidationError

    silent = service.format_error(ValidationError("bad", field="11", fields={"t": "0200"}))
    assert silent.response is None


def test_network_management(term: Term) -> None:
    """Sign-on, echo and sign-off are answered 0810 00 with the business date."""
    for code in (NetworkCode.SIGN_ON, NetworkCode.ECHO, NetworkCode.SIGN_OFF):
        reply = term.send(term.network(code))
        assert isinstance(reply.response, NetworkResponse)
        assert (reply.response.mti, reply.response.response_code) == ("0810", "00")
        assert reply.response.business_date == "0302" and reply.response.code == code.value


def test_business_date_rolls_at_cutoff(term: Term, clock: ManualClock) -> None:
    """After the 23:00 local cut-off DE15 is the next day."""
    clock.advance(timedelta(hours=13, minutes=1))  # 23:01 Shanghai
    reply = term.send(term.sale(100))
    assert reply.response is not None and reply.response.business_date == "0303"


def test_answers_carry_the_host_time_in_the_merchant_zone(term: Term,
                                                         clock: ManualClock) -> None:
    """0210 and 0810 carry the host clock's date and time (DE13/DE12) in the merchant's zone,
    so a terminal prints the host's (simulated) time, not its machine's."""
    clock.advance(timedelta(hours=14, minutes=30, seconds=5))  # 2026-03-03 00:30:05 Shanghai
    sale = term.send(term.sale(100)).response
    sign_on = term.send(term.network(NetworkCode.SIGN_ON)).response
    for answer in (sale, sign_on):
        assert answer is not None
        assert (answer.host_date, answer.host_time) == ("0303", "003005")
        validate_fields(answer.to_fields())


def test_refund_happy_path_records_reason_and_remaining(term: Term,
                                                         service: HostService) -> None:
    """A partial refund is approved with DE54 remaining; the DE48 reason is recorded."""
    rrn = term.approved_sale(10000)
    reply = term.send(term.refund(2500, rrn, reason=RefundReason.PRODUCT_RECALL))
    assert rc(reply) == ("00", None)
    assert isinstance(reply.response, FinancialResponse)
    assert reply.response.remaining is not None and reply.response.remaining.minor == 7500
    assert decode_remaining(reply.response.to_fields()["54"]).minor == 7500  # type: ignore[union-attr]
    refund = service.transaction(reply.response.rrn or "")
    assert refund is not None and refund["reason"] == "product_recall"
    assert refund["original_rrn"] == rrn
    sale = service.transaction(rrn)
    assert sale is not None and (sale["refunded_minor"], sale["remaining_minor"]) == (2500, 7500)
    assert sale["refund_state"] == "PARTIAL"


def test_partial_refunds_up_to_and_beyond_the_sale(term: Term, service: HostService) -> None:
    """Partials sum exactly to the sale; one minor unit more is 13 with DE54 = 0."""
    rrn = term.approved_sale(10000)
    for amount in (3000, 3000, 3999):
        assert rc(term.send(term.refund(amount, rrn))) == ("00", None)
    over = term.send(term.refund(2, rrn))
    assert rc(over) == ("13", "REFUND_EXCEEDS_REMAINING")
    assert isinstance(over.response, FinancialResponse) and over.response.remaining is not None
    assert over.response.remaining.minor == 1
    assert rc(term.send(term.refund(1, rrn))) == ("00", None)
    last = term.send(term.refund(1, rrn))
    assert rc(last) == ("13", "REFUND_EXCEEDS_REMAINING")
    sale = service.transaction(rrn)
    assert sale is not None and sale["refund_state"] == "FULL" and sale["remaining_minor"] == 0
    assert service.balances()["merchant_payable:" + MID]["CNY"] == 0
    assert service.verify()["ok"]


def test_refund_rule_codes_through_the_service(make_service: Callable[..., HostService],
                                               clock: ManualClock) -> None:
    """Refund declines reach the wire with their DE39/DE44 (25, 12, 14, 12, 65, 61)."""
    cfg = config_with(refund={"max_count": 1, "daily_amount_cap_minor": 1500},
                      merchants=[{"id": MID, "terminals": [TID]},
                                 {"id": "MERCHANT0000002", "terminals": ["TERM0002"]}])
    svc = make_service(cfg)
    t = Term(svc, clock)
    other = Term(svc, clock, tid="TERM0002", mid="MERCHANT0000002")
    rrn = t.approved_sale(1000)
    rrn2 = t.approved_sale(1000)
    rrn3 = t.approved_sale(1000)
    assert rc(t.send(t.refund(100, "999999999999"))) == ("25", "ORIGINAL_NOT_FOUND")
    assert rc(other.send(other.refund(100, rrn))) == ("12", "ORIGINAL_OTHER_MERCHANT")
    assert rc(t.send(t.refund(100, rrn, pan=MC))) == ("14", "REFUND_CARD_MISMATCH")
    assert rc(t.send(t.refund(100, rrn, cur="USD"))) == ("12", "REFUND_CURRENCY_MISMATCH")
    assert rc(t.send(t.refund(100, None))) == ("12", "UNREFERENCED_REFUND")
    assert rc(t.send(t.refund(100, rrn))) == ("00", None)
    assert rc(t.send(t.refund(100, rrn))) == ("65", "REFUND_COUNT_LIMIT")
    assert rc(t.send(t.refund(1000, rrn2))) == ("00", None)
    assert rc(t.send(t.refund(500, rrn3))) == ("61", "REFUND_DAILY_LIMIT")
    refund_rrn = [x["rrn"] for x in svc.transactions() if x["kind"] == "refund"
                  and x["state"] == "approved"][0]
    assert rc(t.send(t.refund(1, refund_rrn))) == ("12", "ORIGINAL_NOT_A_SALE")


def test_refund_window(term: Term, clock: ManualClock) -> None:
    """30 days after the sale a refund is fine; a second later it is 12 REFUND_WINDOW_EXPIRED."""
    rrn = term.approved_sale(1000)
    clock.advance(timedelta(days=30))
    assert rc(term.send(term.refund(100, rrn))) == ("00", None)
    clock.advance(timedelta(seconds=1))
    assert rc(term.send(term.refund(100, rrn))) == ("12", "REFUND_WINDOW_EXPIRED")


def test_unreferenced_refund_when_allowed(make_service: Callable[..., HostService],
                                          clock: ManualClock) -> None:
    """A merchant override allowing unreferenced refunds approves one without DE37."""
    cfg = config_with(merchants=[{"id": MID, "terminals": [TID],
                                  "refund": {"allow_unreferenced": True}}])
    t = Term(make_service(cfg), clock)
    reply = t.send(t.refund(100, None))
    assert rc(reply) == ("00", None)
    assert isinstance(reply.response, FinancialResponse) and reply.response.remaining is None


def test_void_rules(make_service: Callable[..., HostService], clock: ManualClock,
                    config: HostConfig) -> None:
    """Voids: other terminal 12, partial 64, after a refund 12, approved once, then 12."""
    cfg = config_with(merchants=[{"id": MID, "terminals": [TID, "TERM0002"]}])
    svc = make_service(cfg)
    t = Term(svc, clock)
    t2 = Term(svc, clock, tid="TERM0002")
    rrn = t.approved_sale(1000)
    assert rc(t2.send(t2.void(rrn, 1000))) == ("12", "VOID_OTHER_TERMINAL")
    assert rc(t.send(t.void(rrn, 999))) == ("64", "VOID_AMOUNT_MISMATCH")
    assert rc(t.send(t.void(rrn, 1000))) == ("00", None)
    assert rc(t.send(t.void(rrn, 1000))) == ("12", "ORIGINAL_NOT_EFFECTIVE")
    assert rc(t.send(t.refund(100, rrn))) == ("12", "ORIGINAL_NOT_EFFECTIVE")
    refunded = t.approved_sale(1000)
    assert rc(t.send(t.refund(100, refunded))) == ("00", None)
    assert rc(t.send(t.void(refunded, 1000))) == ("12", "VOID_AFTER_REFUND")
    sale = svc.transaction(rrn)
    assert sale is not None and sale["capture_state"] == "VOIDED"
    assert svc.verify()["ok"]


def test_void_of_refund_restores_remaining(term: Term, service: HostService) -> None:
    """Voiding a refund (220000) gives its amount back to the sale."""
    rrn = term.approved_sale(1000)
    refund = term.send(term.refund(400, rrn))
    refund_rrn = refund.response.rrn  # type: ignore[union-attr]
    assert rc(term.send(term.void(refund_rrn, 400, voids_refund=True))) == ("00", None)
    sale = service.transaction(rrn)
    assert sale is not None and sale["remaining_minor"] == 1000
    assert rc(term.send(term.refund(1000, rrn))) == ("00", None)


def test_void_after_settlement(term: Term) -> None:
    """Once the batch is closed by 0500, a void is 12 VOID_AFTER_SETTLEMENT; refunds work."""
    rrn = term.approved_sale(1000)
    assert rc(term.send(term.settle("000001", (1, 1000), (0, 0)))) == ("00", None)
    assert rc(term.send(term.void(rrn, 1000))) == ("12", "VOID_AFTER_SETTLEMENT")
    assert rc(term.send(term.refund(1000, rrn))) == ("00", None)


def test_authorization_and_completion(term: Term, service: HostService) -> None:
    """0100 is a pending hold; 0220 captures it (<= the hold) exactly once."""
    auth = term.send(term.auth(5000))
    assert rc(auth) == ("00", None) and auth.response is not None
    code, rrn = auth.response.approval_code, auth.response.rrn  # type: ignore[union-attr]
    assert service.balances()["pending_holds"]["CNY"] == 5000
    assert rc(term.send(term.completion(5001, code, rrn))) == ("64", "COMPLETION_EXCEEDS_AUTH")
    done = term.send(term.completion(4000, code, rrn))
    assert rc(done) == ("00", None) and done.response is not None
    assert done.response.mti == "0230"
    assert rc(term.send(term.completion(4000, code, rrn))) == ("12", "ORIGINAL_NOT_EFFECTIVE")
    assert rc(term.send(term.completion(1, "ZZZZZZ"))) == ("25", "ORIGINAL_NOT_FOUND")
    balances = service.balances()
    assert balances["pending_holds"]["CNY"] == 0
    assert balances["merchant_payable:" + MID]["CNY"] == -4000
    completion_rrn = done.response.rrn  # type: ignore[union-attr]
    assert rc(term.send(term.refund(4000, completion_rrn))) == ("00", None)
    assert service.verify()["ok"]


def test_transactions_query_by_tid_and_stan(term: Term, service: HostService) -> None:
    """transactions(tid, stan) filters; transaction(rrn) returns None when unknown."""
    term.approved_sale(100)
    term.approved_sale(200)
    assert len(service.transactions(tid=TID)) == 2
    assert [x["amount_minor"] for x in service.transactions(stan="000002")] == [200]
    assert service.transaction("nope") is None
    assert service.health()["status"] == "ok"


def test_database_error_answers_96(term: Term, service: HostService) -> None:
    """When the database fails, the reply is 96 SYSTEM_ERROR and nothing is committed."""
    from sqlalchemy import text

    with service.engine.begin() as conn:
        conn.execute(text("DROP TABLE txn"))
    assert rc(term.send(term.sale(100))) == ("96", "SYSTEM_ERROR")
    assert service.balances() == {}


def test_pan_never_stored_in_clear(term: Term, service: HostService, db: str) -> None:
    """The database file holds masked PANs and hashes, never a full PAN."""
    rrn = term.approved_sale(100)
    term.send(term.refund(100, rrn))
    service.close()
    data = b""
    import glob

    for path in glob.glob(db + "*"):
        with open(path, "rb") as fh:
            data += fh.read()
    assert VISA.encode() not in data and b"411111******1111" in data


def test_transaction_pages_walk_every_row_once(term: Term, service: HostService) -> None:
    """GET /transactions paging: newest first, each row once, a last page with next None, and
    a sale booked between pages never shifts the pages still to come."""
    for amount in range(1, 8):
        term.send(term.sale(amount))
    first = service.transactions_page(TID, limit=3)
    term.send(term.sale(99))  # booked while the client pages: not in the older pages
    second = service.transactions_page(TID, limit=3, cursor=first["next"])
    last = service.transactions_page(TID, limit=3, cursor=second["next"])
    amounts = [t["amount_minor"] for page in (first, second, last)
               for t in page["transactions"]]
    assert amounts == [7, 6, 5, 4, 3, 2, 1]
    assert last["next"] is None and first["next"] is not None
    assert service.transactions_page(TID, limit=1)["transactions"][0]["amount_minor"] == 99
