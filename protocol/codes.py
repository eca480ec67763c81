"""Codes with meaning on the wire: response codes (DE39), processing codes (DE3), network
management codes (DE70), entry modes (DE22), refund reasons and the rule ids of DE44.

Rule ids are part of the contract between host and terminal: the host puts one in DE44 on every
decline and special approval, the terminal and the scenario runner explain it to a person.
"""

from __future__ import annotations

import enum


class ResponseCode(enum.StrEnum):
    """DE39 response codes with the short text printed on receipts and screens."""

    def __new__(cls, code: str, text: str) -> ResponseCode:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.text = text
        return obj

    text: str

    APPROVED = ("00", "Approved")
    REFER_TO_ISSUER = ("01", "Refer to card issuer")
    INVALID_MERCHANT = ("03", "Invalid merchant")
    DO_NOT_HONOUR = ("05", "Do not honour")
    IN_PROGRESS = ("09", "Request in progress")
    INVALID_TRANSACTION = ("12", "Invalid transaction")
    INVALID_AMOUNT = ("13", "Invalid amount")
    INVALID_CARD_NUMBER = ("14", "Invalid card number")
    SUSPECTED_MALFUNCTION = ("22", "Suspected malfunction, or past the days allowed")
    RECORD_NOT_FOUND = ("25", "Unable to locate original")
    FORMAT_ERROR = ("30", "Format error")
    INSUFFICIENT_FUNDS = ("51", "Insufficient funds")
    EXPIRED_CARD = ("54", "Expired card")
    INCORRECT_PIN = ("55", "Incorrect PIN")
    NOT_PERMITTED_CARDHOLDER = ("57", "Not permitted to cardholder")
    NOT_PERMITTED_TERMINAL = ("58", "Not permitted to terminal")
    EXCEEDS_AMOUNT_LIMIT = ("61", "Exceeds amount limit")
    SECURITY_VIOLATION = ("63", "Security violation")
    ORIGINAL_AMOUNT_INCORRECT = ("64", "Original amount incorrect")
    EXCEEDS_FREQUENCY_LIMIT = ("65", "Exceeds frequency limit")
    RESPONSE_TOO_LATE = ("68", "Response received too late")
    SIGN_ON_AGAIN = ("77", "Sign on again: not signed on, or another batch")
    ISSUER_INOPERATIVE = ("91", "Issuer or switch inoperative")
    DUPLICATE = ("94", "Duplicate transmission")
    RECONCILE_ERROR = ("95", "Reconcile error")
    SYSTEM_MALFUNCTION = ("96", "System malfunction")
    TERMINAL_NOT_REGISTERED = ("97", "Terminal not registered")
    NO_ISSUER_ANSWER = ("98", "No answer from the issuer")
    PIN_FORMAT_ERROR = ("99", "PIN format error: sign on again")
    MAC_CHECK_FAILED = ("A0", "MAC check failed: sign on again")

    @property
    def approved(self) -> bool:
        """True for 00."""
        return self is ResponseCode.APPROVED

    @classmethod
    def parse(cls, code: str) -> ResponseCode | str:
        """The enum member for a known code; unknown codes from other hosts stay plain text."""
        found = cls._value2member_map_.get(code)
        return found if isinstance(found, ResponseCode) else code


def response_text(code: str) -> str:
    """Short text for any DE39 value, known or not."""
    rc = ResponseCode.parse(code)
    return rc.text if isinstance(rc, ResponseCode) else f"Response code {code}"


class ProcessingCode(enum.StrEnum):
    """DE3 values of the generic profile (type, from-account, to-account)."""

    PURCHASE = "000000"
    REFUND = "200000"
    VOID_SALE = "020000"
    VOID_REFUND = "220000"
    RECONCILE = "920000"
    RECONCILE_AFTER_UPLOAD = "960000"


class NetworkCode(enum.StrEnum):
    """DE70 network management information codes."""

    SIGN_ON = "001"
    SIGN_OFF = "002"
    ECHO = "301"


class EntryMode(enum.StrEnum):
    """DE22 positions 1-2: how the PAN was read. Position 3 is PIN capability."""

    MANUAL = "01"
    SWIPE = "90"
    CHIP = "05"
    CONTACTLESS = "07"

    @property
    def label(self) -> str:
        """Receipt wording."""
        return {"01": "MANUAL", "90": "SWIPE", "05": "CHIP", "07": "CONTACTLESS"}[self.value]


class RefundReason(enum.StrEnum):
    """Why a refund is made; the reasons of the product's origin document. Sent in DE48."""

    TRANSACTION_FAILURE = "transaction_failure"
    PAYMENT_ERROR = "payment_error"
    PRODUCT_RECALL = "product_recall"
    RETURN = "return"
    OTHER = "other"

    @property
    def label(self) -> str:
        """Human wording for menus and receipts."""
        return self.value.replace("_", " ").capitalize()


class RuleId(enum.StrEnum):
    """Machine-readable rule ids carried in DE44 (at most 25 characters)."""

    def __new__(cls, rule: str, code: str, explanation: str) -> RuleId:
        obj = str.__new__(cls, rule)
        obj._value_ = rule
        obj.code = code
        obj.explanation = explanation
        return obj

    code: str
    explanation: str

    UNKNOWN_TERMINAL = ("UNKNOWN_TERMINAL", "58", "This terminal is not registered at the host")
    UNKNOWN_MERCHANT = ("UNKNOWN_MERCHANT", "03", "The merchant id is not known to the host")
    CERT_TID_MISMATCH = ("CERT_TID_MISMATCH", "58",
                         "The terminal's TLS certificate does not name this terminal id")
    CURRENCY_NOT_ACCEPTED = ("CURRENCY_NOT_ACCEPTED", "12",
                             "The merchant does not accept this currency")
    FORMAT_ERROR = ("FORMAT_ERROR", "30", "The message breaks the format rules")
    MISSING_FIELD = ("MISSING_FIELD", "30", "A mandatory field is missing")
    INVALID_CARD_NUMBER = ("INVALID_CARD_NUMBER", "14", "The card number fails its check digit")
    CARD_DECLINED = ("CARD_DECLINED", "05", "The card issuer declined")
    INSUFFICIENT_FUNDS = ("INSUFFICIENT_FUNDS", "51", "The card has insufficient funds")
    EXPIRED_CARD = ("EXPIRED_CARD", "54", "The card has expired")
    INCORRECT_PIN = ("INCORRECT_PIN", "55", "The PIN is wrong")
    PIN_TRIES_EXCEEDED = ("PIN_TRIES_EXCEEDED", "75",
                          "Too many wrong PINs for this card: locked until a later business day")
    PIN_FORMAT_ERROR = ("PIN_FORMAT_ERROR", "99", "The PIN block or DE53 is malformed")
    MAC_FAILED = ("MAC_FAILED", "63", "The message authentication code does not verify")
    SIGN_ON_REQUIRED = ("SIGN_ON_REQUIRED", "77", "The terminal must sign on for new keys first")
    ORIGINAL_NOT_FOUND = ("ORIGINAL_NOT_FOUND", "25", "No sale with this reference was found")
    ORIGINAL_NOT_A_SALE = ("ORIGINAL_NOT_A_SALE", "12", "The referenced transaction is not a sale")
    ORIGINAL_NOT_EFFECTIVE = ("ORIGINAL_NOT_EFFECTIVE", "12", "The original is no longer in "
                              "effect: voided, reversed or already completed")
    ORIGINAL_OTHER_MERCHANT = ("ORIGINAL_OTHER_MERCHANT", "12",
                               "The original sale belongs to another merchant")
    REFUND_CARD_MISMATCH = ("REFUND_CARD_MISMATCH", "14",
                            "Refunds go back to the card of the original sale")
    REFUND_CURRENCY_MISMATCH = ("REFUND_CURRENCY_MISMATCH", "12",
                                "The refund currency differs from the sale's")
    REFUND_WINDOW_EXPIRED = ("REFUND_WINDOW_EXPIRED", "12",
                             "The sale is older than the refund window")
    REFUND_EXCEEDS_REMAINING = ("REFUND_EXCEEDS_REMAINING", "13",
                                "Refund exceeds the remaining refundable amount of this sale")
    REFUND_COUNT_LIMIT = ("REFUND_COUNT_LIMIT", "65", "This sale has had its maximum refunds")
    REFUND_DAILY_LIMIT = ("REFUND_DAILY_LIMIT", "61",
                          "The merchant's refund total for today would exceed its limit")
    UNREFERENCED_REFUND = ("UNREFERENCED_REFUND", "12",
                           "Refunds without an original sale are not allowed")
    REFUND_PENDING_REVIEW = ("REFUND_PENDING_REVIEW", "00",
                             "Approved, held for review before it is settled")
    PARTIAL_REFUND_NOT_ALLOWED = ("PARTIAL_REFUND_REFUSED", "13",
                                  "This merchant only refunds the whole remaining amount")
    ZERO_AMOUNT = ("ZERO_AMOUNT", "13", "The amount must be greater than zero")
    COMPLETION_EXCEEDS_AUTH = ("COMPLETION_EXCEEDS_AUTH", "64",
                               "The completion is larger than the authorized amount")
    REVERSAL_AFTER_SETTLEMENT = ("REVERSAL_AFTER_SETTLE", "12",
                                 "The void's batch is closed: the void stands")
    REVERSAL_AFTER_REFUND = ("REVERSAL_AFTER_REFUND", "12",
                             "The sale has refunds: it can no longer be reversed")
    VOID_AFTER_SETTLEMENT = ("VOID_AFTER_SETTLEMENT", "12",
                             "The batch of the original is closed: make a refund instead")
    VOID_AMOUNT_MISMATCH = ("VOID_AMOUNT_MISMATCH", "64",
                            "A void must be for the full original amount")
    VOID_OTHER_TERMINAL = ("VOID_OTHER_TERMINAL", "12",
                           "Only the terminal that made the sale can void it")
    VOID_AFTER_REFUND = ("VOID_AFTER_REFUND", "12",
                         "The sale has refunds: it can no longer be voided")
    DUPLICATE_DIFFERENT = ("DUPLICATE_DIFFERENT", "94",
                           "Same trace number as an earlier message with different content")
    REVERSED_BEFORE_ARRIVAL = ("REVERSED_BEFORE_ARRIVAL", "12",
                               "This transaction was already reversed by the terminal")
    REVERSAL_UNKNOWN = ("REVERSAL_UNKNOWN", "00",
                        "Nothing to reverse: the original never reached the host")
    RECONCILE_MISMATCH = ("RECONCILE_MISMATCH", "95",
                          "Batch totals differ from the host: upload the batch")
    BATCH_NOT_FOUND = ("BATCH_NOT_FOUND", "12", "The host has no open batch with this number")
    SYSTEM_ERROR = ("SYSTEM_ERROR", "96", "The host had an internal error; nothing was booked")
    FORCED = ("FORCED", "05", "A fault rule forced this answer")

    @classmethod
    def parse(cls, text: str) -> RuleId | None:
        """The rule for a DE44 value, or None for text poslab did not write."""
        found = cls._value2member_map_.get(text.split(":", 1)[0].strip())
        return found if isinstance(found, RuleId) else None
