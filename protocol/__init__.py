"""poslab's wire contract: ISO 8583 specs, codec, framing, typed messages, codes and masking.

Pure: no I/O, no clock. Host and terminal both import from here and from nowhere else of ours.
"""

from protocol.codec import Codec, Tpdu
from protocol.codes import (
    EntryMode,
    NetworkCode,
    ProcessingCode,
    RefundReason,
    ResponseCode,
    RuleId,
    response_text,
)
from protocol.describe import describe, describe_fields
from protocol.errors import DecodeError, EncodeError, FramingError, ProtocolError, ValidationError
from protocol.framing import Deframer, frame
from protocol.masking import Pan, Track2, luhn_ok, mask_pan, scrub
from protocol.messages import (
    AuthorizationRequest,
    BatchTotals,
    BatchUploadRequest,
    BatchUploadResponse,
    CardData,
    CompletionAdvice,
    FinancialResponse,
    NetworkRequest,
    NetworkResponse,
    OriginalData,
    ReconciliationRequest,
    ReconciliationResponse,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
    parse_request,
    parse_response,
    response_mti,
)
from protocol.money import Currency, Money, currency
from protocol.specs import (
    DEFAULT_PROFILE,
    PROFILES,
    Direction,
    LengthHeader,
    TxnType,
    WireProfile,
    get_profile,
)

__all__ = [
    "DEFAULT_PROFILE", "PROFILES", "AuthorizationRequest", "BatchTotals", "BatchUploadRequest",
    "BatchUploadResponse", "CardData", "Codec", "CompletionAdvice", "Currency", "DecodeError",
    "Deframer", "Direction", "EncodeError", "EntryMode", "FinancialResponse", "FramingError",
    "LengthHeader", "Money",
    "NetworkCode", "NetworkRequest", "NetworkResponse", "OriginalData", "Pan", "ProcessingCode",
    "ProtocolError", "ReconciliationRequest", "ReconciliationResponse", "RefundReason",
    "RefundRequest", "ResponseCode", "ReversalRequest", "RuleId", "SaleRequest", "Tpdu",
    "Track2", "TxnType", "ValidationError", "VoidRequest", "WireProfile", "currency", "describe",
    "describe_fields", "frame", "get_profile", "luhn_ok", "mask_pan", "parse_request",
    "parse_response", "response_mti", "response_text", "scrub",
]  # fmt: skip
