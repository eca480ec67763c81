"""One realistic instance of every typed message, shared by the protocol tests.

The PANs are public test card numbers (Luhn-valid); tests assert they never leak unmasked.
"""

from __future__ import annotations

from protocol import (
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    CardData,
    CompletionAdvice,
    EntryMode,
    FinancialResponse,
    Money,
    NetworkCode,
    NetworkRequest,
    NetworkResponse,
    OriginalData,
    Pan,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundReason,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    Track2,
    VoidRequest,
)
from protocol.messages import Message

PAN = "4761739001010119"
PAN2 = "5413330089010608"
TRACK2 = f"{PAN}=28121010000000000"
PIN_BLOCK = "0412AC89ABCDEF67"
TEST_PANS = (PAN, PAN2, "4111111111111111", "6226090000000048")

TID = "TERM0001"
MID = "MERCHANT0000001"
SENT = "0315103000"  # DE7 MMDDhhmmss

_CHIP = CardData(EntryMode.CHIP, pan=Pan(PAN), expiry="2812")
_SWIPE_PIN = CardData(EntryMode.SWIPE, track2=Track2(TRACK2), pin_block=PIN_BLOCK)
_MANUAL = CardData(EntryMode.MANUAL, pan=Pan(PAN2), expiry="2701")
_COMMON = {"terminal_id": TID, "merchant_id": MID, "transmitted_at": SENT}
_LOCAL = {"local_time": "103000", "local_date": "0315"}


def samples() -> dict[str, Message]:
    """Every message kind, keyed by a stable name used for the golden vectors."""
    return {
        "auth_0100": AuthorizationRequest(
            stan="000101", card=_CHIP, amount=Money(10000, "CNY"), **_COMMON, **_LOCAL
        ),
        "sale_0200": SaleRequest(
            stan="000102", card=_SWIPE_PIN, amount=Money(12550, "CNY"), **_COMMON, **_LOCAL
        ),
        "refund_0200": RefundRequest(
            stan="000103",
            card=_MANUAL,
            amount=Money(4000, "CNY"),
            original_rrn="000000000123",
            reason=RefundReason.RETURN,
            evidence="RMA-42",
            operator="01",
            **_COMMON,
            **_LOCAL,
        ),
        "void_sale_0200": VoidRequest(
            stan="000104",
            card=_CHIP,
            amount=Money(12550, "CNY"),
            original_rrn="000000000124",
            operator="02",
            **_COMMON,
        ),
        "void_refund_0200": VoidRequest(
            stan="000105",
            card=None,
            amount=Money(4000, "CNY"),
            original_rrn="000000000125",
            voids_refund=True,
            **_COMMON,
        ),
        "completion_0220": CompletionAdvice(
            stan="000106",
            card=None,
            amount=Money(9000, "CNY"),
            approval_code="AB1234",
            original_rrn="000000000126",
            **_COMMON,
            **_LOCAL,
        ),
        "reversal_0400": ReversalRequest(
            stan="000102", processing_code="000000", amount=Money(12550, "CNY"), **_COMMON
        ),
        "reversal_0401_de90": ReversalRequest(
            stan="000102",
            processing_code="200000",
            amount=Money(4000, "CNY"),
            repeat=True,
            card=_MANUAL,
            original=OriginalData("0200", "000102", "0315102959", "00000012345", "00000067890"),
            **_COMMON,
        ),
        "recon_920000": ReconciliationRequest(
            stan="000107",
            batch_number="000001",
            totals=BatchTotals(
                "CNY", debits_count=3, debits_minor=37650, credits_count=1, credits_minor=4000
            ),
            **_COMMON,
        ),
        "recon_960000": ReconciliationRequest(
            stan="000109",
            batch_number="000001",
            after_upload=True,
            totals=BatchTotals("CNY", debits_count=3, debits_minor=37650),
            **_COMMON,
        ),
        "batch_upload_0320": BatchUploadRequest(
            stan="000102",
            batch_number="000001",
            processing_code="000000",
            amount=Money(12550, "CNY"),
            rrn="000000000124",
            approval_code="AB1235",
            **_COMMON,
            **_LOCAL,
        ),
        "sign_on_0800": NetworkRequest(stan="000001", code=NetworkCode.SIGN_ON, **_COMMON),
        "sign_off_0800": NetworkRequest(stan="000002", code=NetworkCode.SIGN_OFF, **_COMMON),
        "echo_0800": NetworkRequest(stan="000003", code=NetworkCode.ECHO, **_COMMON),
        "auth_resp_0110": FinancialResponse(
            mti_value="0110",
            stan="000101",
            response_code="00",
            processing_code="000000",
            amount=Money(10000, "CNY"),
            rrn="000000000126",
            approval_code="AB1234",
            business_date="0315",
            pan=Pan(PAN),
            **_COMMON,
        ),
        "refund_decline_0210": FinancialResponse(
            mti_value="0210",
            stan="000103",
            response_code="13",
            rule="REFUND_EXCEEDS_REMAINING",
            processing_code="200000",
            amount=Money(4000, "CNY"),
            remaining=Money(2500, "CNY"),
            host_time="103001",
            host_date="0315",
            **_COMMON,
        ),
        "advice_resp_0230": FinancialResponse(
            mti_value="0230",
            stan="000106",
            response_code="00",
            processing_code="000000",
            amount=Money(9000, "CNY"),
            rrn="000000000126",
            **_COMMON,
        ),
        "reversal_resp_0410": FinancialResponse(
            mti_value="0410",
            stan="000102",
            response_code="00",
            processing_code="000000",
            amount=Money(12550, "CNY"),
            **_COMMON,
        ),
        "recon_resp_0510": ReconciliationResponse(
            mti_value="0510",
            stan="000107",
            response_code="95",
            rule="RECONCILE_MISMATCH",
            batch_number="000001",
            processing_code="920000",
            totals=BatchTotals("CNY", debits_count=2, debits_minor=25100),
            **_COMMON,
        ),
        "batch_upload_resp_0330": BatchUploadResponse(
            mti_value="0330",
            stan="000102",
            response_code="00",
            rrn="000000000124",
            batch_number="000001",
            **_COMMON,
        ),
        "network_resp_0810": NetworkResponse(
            mti_value="0810",
            stan="000001",
            response_code="00",
            code="001",
            business_date="0315",
            **_COMMON,
        ),
    }
