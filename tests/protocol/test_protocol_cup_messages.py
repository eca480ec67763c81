"""CUP field dicts read into poslab's typed messages and typed answers written back as CUP
field dicts (:mod:`protocol.cup_messages`)."""

from __future__ import annotations

import pytest

from protocol import ValidationError
from protocol.codes import NetworkCode, RuleId, response_text
from protocol.cup import CUP_PROFILE
from protocol.cup_messages import CUP_CODES, cup_code, cup_response_fields, parse_cup_request
from protocol.cup_private import CupFacts, CupTotals, De60, SchemeTotals, SettlementResult
from protocol.messages import (
    CupUploadRequest,
    FinancialResponse,
    NetworkRequest,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.money import Money
from protocol.transactions import TxnType

IDS = {"11": "000124", "41": "TERM0001", "42": "MERCHANT0000001"}
PAN = "6212345678901232"
SALE = {"t": "0200", "2": PAN, "3": "000000", "4": "000000010000", "22": "021", "25": "00",
        **IDS, "49": "156", "60": "2200000100050"}
REFUND = {**SALE, "t": "0220", "3": "200000", "4": "000000003000", "37": "433810000001",
          "60": "2500000100050", "61": "0000000000001204"}


def test_sale_reads_as_the_generic_sale_with_its_batch() -> None:
    """0200/00/00/22 is a SaleRequest in CNY; 60.2 is its batch, and it has no local times."""
    txn, sale = parse_cup_request(SALE, CUP_PROFILE)
    assert txn is TxnType.SALE and isinstance(sale, SaleRequest)
    assert sale.amount == Money(10000, "CNY") and sale.mti == "0200"
    assert sale.cup is not None and sale.cup.batch == "000001"
    assert sale.local_date is None


def test_refund_is_an_0220_with_its_original_date_and_rrn() -> None:
    """0220/20/00/25 is a RefundRequest whose MTI stays 0220; DE37 and 61.3 name the sale."""
    txn, refund = parse_cup_request(REFUND, CUP_PROFILE)
    assert txn is TxnType.REFUND and isinstance(refund, RefundRequest)
    assert refund.mti == "0220" and refund.original_rrn == "433810000001"
    assert refund.cup is not None and refund.cup.original is not None
    assert refund.cup.original.date_mmdd == "1204"


def test_void_reversal_and_management_messages() -> None:
    """A void carries DE61's batch and trace; an 0400 its reason; 0800/0820 sign on and off;
    an 0500 the CUP totals; an 0320 its records or, with 60.3 207, the end of the upload."""
    _, void = parse_cup_request({**SALE, "3": "200000", "37": "433810000001",
                                 "60": "2300000100050", "61": "000001000123"}, CUP_PROFILE)
    assert isinstance(void, VoidRequest) and void.cup is not None
    assert void.cup.original is not None and void.cup.original.trace == "000123"
    _, reversal = parse_cup_request({**SALE, "t": "0400", "39": "98"}, CUP_PROFILE)
    assert isinstance(reversal, ReversalRequest) and reversal.reason_code == "98"
    txn, off = parse_cup_request({"t": "0820", **IDS, "60": "00000001002"}, CUP_PROFILE)
    assert txn is TxnType.SIGN_OFF and isinstance(off, NetworkRequest)
    assert off.code is NetworkCode.SIGN_OFF and off.mti == "0820"
    totals = "000000010000001000000003000001" + "0" + "0" * 30 + "0"
    _, settle = parse_cup_request({"t": "0500", **IDS, "48": totals, "49": "156",
                                   "60": "00000001201", "63": "001"}, CUP_PROFILE)
    assert isinstance(settle, ReconciliationRequest) and settle.cup is not None
    assert settle.cup.totals == CupTotals(SchemeTotals(10000, 1, 3000, 1))
    _, end = parse_cup_request({"t": "0320", **IDS, "48": "0004", "60": "00000001207"},
                               CUP_PROFILE)
    assert isinstance(end, CupUploadRequest) and end.closing


@pytest.mark.parametrize(("change", "field"), [
    ({"25": None}, "25"),  # identifies the transaction: named as missing
    ({"60": "2700000100050"}, "60"),  # 60.1 27: no such transaction
    ({"11": None}, "11"),
    ({"60": "22000"}, "60"),  # DE60 too short for a batch
    ({"49": "999"}, "49"),
])
def test_bad_requests_name_the_field(change: dict[str, str | None], field: str) -> None:
    """A missing or malformed field is a ValidationError naming it (answered 30)."""
    fields = {k: v for k, v in {**SALE, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as info:
        parse_cup_request(fields, CUP_PROFILE)
    assert info.value.field == field


def test_answer_is_written_as_a_cup_0230_with_the_cup_code() -> None:
    """An over-refund decline: 0230, DE39 61 (CUP) with the rule in DE44, the request's DE60
    and DE61 echoed, no approval code and no card number."""
    typed = FinancialResponse(
        mti_value="0210", stan="000124", terminal_id="TERM0001", merchant_id="MERCHANT0000001",
        response_code="13", rule=RuleId.REFUND_EXCEEDS_REMAINING.value, business_date="1204",
        processing_code="200000", amount=Money(3000, "CNY"), rrn="000000000009",
        approval_code="000009")
    out = cup_response_fields(REFUND, typed).to_fields()
    assert (out["t"], out["39"], out["44"]) == ("0230", "61", "REFUND_EXCEEDS_REMAINING")
    assert out["60"] == REFUND["60"] and out["61"] == REFUND["61"]
    assert "38" not in out and "2" not in out


def test_settlement_answer_carries_the_totals_of_its_facts() -> None:
    """An 0510 writes DE48 from the answer's CUP facts (flag 2 here) and its DE60."""
    totals = CupTotals(SchemeTotals(1, 1), result=SettlementResult.NOT_BALANCED)
    typed = ReconciliationResponse(
        mti_value="0510", response_code="00", stan="000125", terminal_id="TERM0001",
        merchant_id="MERCHANT0000001",
        cup_data=CupFacts("0510", De60("00", "000001", "201"), totals=totals))
    out = cup_response_fields({"t": "0500", **IDS, "60": "00000001201"}, typed).to_fields()
    assert out["48"] == totals.text() and out["48"][30] == "2" and out["60"] == "00000001201"


def test_cup_codes_keep_codes_the_checks_chose() -> None:
    """A rule's generic code becomes its CUP code; a code set on purpose stays."""
    assert cup_code("63", RuleId.MAC_FAILED.value) == "A0"
    assert cup_code("97", RuleId.MAC_FAILED.value) == "97"  # a configured MAC code
    assert cup_code("58", "UNKNOWN_TERMINAL:NOT_ENROLLED") == "58"
    assert cup_code("58", "UNKNOWN_TERMINAL") == "97"
    assert cup_code("05", None) == "05"


def test_every_code_the_cup_profile_answers_has_a_meaning() -> None:
    """Each DE39 the CUP profile maps a rule to is explained in words, not "Response code NN"."""
    unexplained = sorted({code for code in CUP_CODES.values()
                          if response_text(code).startswith("Response code")})
    assert not unexplained, unexplained
