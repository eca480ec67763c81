"""Typed views of every message poslab speaks, with ``to_fields()`` / ``from_fields()``.

Rules, ledgers and screens work with these dataclasses and never with field numbers; this
module and :mod:`protocol.specs` are the only places that know which data element carries
what. Amounts are :class:`~protocol.money.Money` in minor units; the PAN is a
:class:`~protocol.masking.Pan` that renders masked.

=========================  =====  ===========  ======================================
Class                      MTI    DE3          Notes
=========================  =====  ===========  ======================================
AuthorizationRequest       0100   000000       pending hold
SaleRequest                0200   000000
RefundRequest              0200   200000       DE37 original RRN (absent: unreferenced),
                                               DE48 reason/evidence/operator
VoidRequest                0200   020000/      DE37 original RRN, DE4 original amount
                                  220000
CompletionAdvice           0220   000000       DE38 approval code of the hold
ReversalRequest            0400/  original's   DE11/DE4/DE41/DE42 of the original, DE90
                           0401
ReconciliationRequest      0500   920000/      DE60 batch, DE74/76 counts, DE86/88 amounts
                                  960000
BatchUploadRequest         0320   original's   one transaction of the batch
NetworkRequest             0800   --           DE70 001 sign-on, 002 sign-off, 301 echo
FinancialResponse          0110/0210/0230/0410
ReconciliationResponse     0510
BatchUploadResponse        0330
NetworkResponse            0810
=========================  =====  ===========  ======================================

Reconciliation counts follow the acquirer's view: *debits* are sales (the cardholder is
debited), *credits* are refunds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from protocol.codes import (
    EntryMode,
    NetworkCode,
    ProcessingCode,
    RefundReason,
    RuleId,
    response_text,
)
from protocol.cup_private import CupFacts
from protocol.errors import ValidationError
from protocol.masking import Pan, Track2
from protocol.money import Money, currency
from protocol.private_data import (
    De48Error,
    decode_remaining,
    decode_tlv,
    encode_remaining,
    encode_tlv,
    tlv_items,
)

Fields: TypeAlias = dict[str, str]


#: The longest batch number (DE60 of an 0500 or 0320) poslab keeps; checked here, before any
#: database sees it, so every backend answers a longer one alike (30, ``FORMAT_ERROR:60``).
BATCH_NUMBER_MAX = 16


def _batch_number(fields: Mapping[str, str]) -> str:
    number = _req(fields, "60")
    if len(number) > BATCH_NUMBER_MAX:
        raise ValidationError(f"batch number longer than {BATCH_NUMBER_MAX} characters",
                              field="60", fields=fields)
    return number


def _req(fields: Mapping[str, str], key: str) -> str:
    try:
        return fields[key]
    except KeyError:
        raise ValidationError(
            f"mandatory field {key} is missing", field=key, fields=fields
        ) from None


def _pan_field(digits: str, key: str, fields: Mapping[str, str]) -> Pan:
    """A PAN from DE2 or the track; an empty or non-digit one is a format error, not a crash."""
    try:
        return Pan(digits)
    except ValueError:
        raise ValidationError("the card number is empty or not digits", field=key,
                              fields=fields) from None


def _de48(fields: Mapping[str, str]) -> dict[str, str]:
    """DE48 items; a malformed DE48 error carries the fields so a host can still answer 30."""
    try:
        return decode_tlv(fields.get("48", ""))
    except De48Error as exc:  # keeps its DE44 text (tag, offset, what is wrong)
        exc.fields = dict(fields)
        raise


def _put(out: Fields, key: str, value: str | None) -> None:
    if value is not None:
        out[key] = value


def _money(fields: Mapping[str, str]) -> Money:
    try:
        cur = currency(_req(fields, "49")).alpha
    except ValueError:
        raise ValidationError("unknown currency code", field="49", fields=fields) from None
    return Money(int(_req(fields, "4")), cur)


def _put_money(out: Fields, amount: Money | None) -> None:
    if amount is not None:
        out["4"] = f"{amount.minor:012d}"
        out["49"] = currency(amount.currency).numeric


@dataclass(frozen=True)
class OriginalData:
    """DE90: the original message's MTI, STAN, transmission time and institution ids."""

    mti: str
    stan: str
    transmitted_at: str
    acquirer_id: str = "0" * 11
    forwarding_id: str = "0" * 11

    def to_field(self) -> str:
        """The 42-digit DE90 value."""
        return f"{self.mti}{self.stan}{self.transmitted_at}{self.acquirer_id}{self.forwarding_id}"

    @classmethod
    def from_field(cls, value: str) -> OriginalData:
        """Split a DE90 value."""
        return cls(value[:4], value[4:10], value[10:20], value[20:31], value[31:42])


@dataclass(frozen=True)
class CardData:
    """How the card was presented: PAN and expiry (manual, chip) or track 2 (swipe).

    The PIN block is excluded from ``repr`` and never rendered anywhere.
    """

    entry_mode: EntryMode
    pan: Pan | None = None
    expiry: str | None = None  # YYMM
    track2: Track2 | None = None
    pin_block: str | None = field(default=None, repr=False)  # hex, DE52
    security_control: str | None = None  # DE53, with a PIN block

    @property
    def account(self) -> Pan:
        """The PAN, from DE2 or from the track."""
        if self.pan is not None:
            return self.pan
        if self.track2 is not None:
            return self.track2.pan
        raise ValueError("card data has neither a PAN nor track 2")

    def to_fields(self, out: Fields) -> None:
        """Write DE2/DE14/DE35/DE22/DE52 into ``out``."""
        if self.pan is not None:
            out["2"] = self.pan.digits
        _put(out, "14", self.expiry)
        if self.track2 is not None:
            out["35"] = self.track2.data
        out["22"] = self.entry_mode.value + ("1" if self.pin_block else "2")
        _put(out, "52", self.pin_block)
        _put(out, "53", self.security_control)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CardData:
        """Read card data; DE2 or DE35 must be present."""
        if "2" not in fields and "35" not in fields:
            raise ValidationError("card data missing: neither DE2 nor DE35", field="2",
                                  fields=fields)
        try:
            mode = EntryMode(fields.get("22", "012")[:2])
        except ValueError:
            mode = EntryMode.MANUAL
        track2 = None
        if "35" in fields:
            track2 = Track2(fields["35"])
            _pan_field(track2.data.replace("D", "=").split("=", 1)[0], "35", fields)
        return cls(
            entry_mode=mode,
            pan=_pan_field(fields["2"], "2", fields) if "2" in fields else None,
            expiry=fields.get("14"),
            track2=track2,
            pin_block=fields.get("52"),
            security_control=fields.get("53"),
        )


@dataclass(frozen=True, kw_only=True)
class Message:
    """What every message carries: trace number, terminal, merchant, transmission time."""

    MTI: ClassVar[str] = ""
    stan: str
    terminal_id: str
    merchant_id: str
    transmitted_at: str | None = None  # DE7 MMDDhhmmss
    # A CUP message's own data (typed through :attr:`cup`; kept as Any so that a ``**ids``
    # of strings still type-checks against this constructor).
    cup_data: Any = field(default=None, repr=False)

    @property
    def cup(self) -> CupFacts | None:
        """What a CUP message carries beyond this typed message; None on generic profiles."""
        facts: CupFacts | None = self.cup_data
        return facts

    @property
    def mti(self) -> str:
        """The message type indicator (a CUP message's own: a CUP refund is an 0220)."""
        facts = self.cup_data
        return self.MTI if facts is None else str(facts.mti)

    def _base_fields(self) -> Fields:
        out: Fields = {"t": self.mti, "11": self.stan, "41": self.terminal_id,
                       "42": self.merchant_id}
        _put(out, "7", self.transmitted_at)
        return out

    @staticmethod
    def _base_kwargs(fields: Mapping[str, str]) -> dict[str, str | None]:
        return {
            "stan": _req(fields, "11"),
            "terminal_id": _req(fields, "41"),
            "merchant_id": _req(fields, "42"),
            "transmitted_at": fields.get("7"),
        }

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        return self._base_fields()


@dataclass(frozen=True, kw_only=True)
class FinancialRequest(Message):
    """A request that moves or holds money: card, amount, local time, condition code."""

    PROCESSING: ClassVar[ProcessingCode] = ProcessingCode.PURCHASE
    card: CardData | None
    amount: Money
    local_time: str | None = None  # DE12 hhmmss
    local_date: str | None = None  # DE13 MMDD
    pos_condition: str = "00"  # DE25
    ksn: str | None = None  # DE62: a DUKPT terminal's key serial number, 20 hex digits

    @property
    def processing_code(self) -> str:
        """DE3."""
        return self.PROCESSING.value

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._base_fields()
        out["3"] = self.processing_code
        _put_money(out, self.amount)
        _put(out, "12", self.local_time)
        _put(out, "13", self.local_date)
        out["25"] = self.pos_condition
        if self.card is not None:
            self.card.to_fields(out)
        _put(out, "62", self.ksn)
        return out

    @classmethod
    def _financial_kwargs(cls, fields: Mapping[str, str], card_required: bool = True
                          ) -> dict[str, object]:
        kw: dict[str, object] = dict(cls._base_kwargs(fields))
        kw["amount"] = _money(fields)
        kw["local_time"] = fields.get("12")
        kw["local_date"] = fields.get("13")
        kw["pos_condition"] = fields.get("25", "00")
        if card_required or "2" in fields or "35" in fields:
            kw["card"] = CardData.from_fields(fields)
        else:
            kw["card"] = None
        return kw


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest(FinancialRequest):
    """0100: reserve an amount on the card (a pending hold), completed later by an 0220."""

    MTI: ClassVar[str] = "0100"

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> AuthorizationRequest:
        """Parse a decoded 0100."""
        return cls(**cls._financial_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class SaleRequest(FinancialRequest):
    """0200 / 000000: a purchase."""

    MTI: ClassVar[str] = "0200"

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> SaleRequest:
        """Parse a decoded 0200 purchase."""
        return cls(**cls._financial_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class RefundRequest(FinancialRequest):
    """0200 / 200000: money back to the card of an earlier sale (DE37 = its RRN)."""

    MTI: ClassVar[str] = "0200"
    PROCESSING: ClassVar[ProcessingCode] = ProcessingCode.REFUND
    original_rrn: str | None
    reason: RefundReason = RefundReason.OTHER
    evidence: str | None = None
    operator: str | None = None

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = super().to_fields()
        _put(out, "37", self.original_rrn)
        items = {"RS": self.reason.value}
        if self.evidence:
            items["EV"] = self.evidence
        if self.operator:
            items["OP"] = self.operator
        out["48"] = encode_tlv(items)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> RefundRequest:
        """Parse a decoded 0200 refund; a missing or unknown reason reads as ``other``."""
        kw = cls._financial_kwargs(fields)
        items = _de48(fields)
        try:
            reason = RefundReason(items.get("RS", "other"))
        except ValueError:
            where = [i.offset for i in tlv_items(fields.get("48", "")) if i.tag == "RS"][-1]
            error = De48Error(f"unknown refund reason in DE48 at offset {where}",
                              f"48:RS@{where} UNKNOWN REASON")
            error.fields = dict(fields)
            raise error from None
        return cls(original_rrn=fields.get("37"), reason=reason, evidence=items.get("EV"),
                   operator=items.get("OP"), **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class VoidRequest(FinancialRequest):
    """0200 / 020000 (void of a sale) or 220000 (void of a refund); full original amount."""

    MTI: ClassVar[str] = "0200"
    original_rrn: str
    voids_refund: bool = False
    operator: str | None = None

    @property
    def processing_code(self) -> str:
        """DE3: which kind of original is voided."""
        code = ProcessingCode.VOID_REFUND if self.voids_refund else ProcessingCode.VOID_SALE
        return code.value

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = super().to_fields()
        out["37"] = self.original_rrn
        if self.operator:
            out["48"] = encode_tlv({"OP": self.operator})
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> VoidRequest:
        """Parse a decoded 0200 void."""
        kw = cls._financial_kwargs(fields, card_required=False)
        return cls(original_rrn=_req(fields, "37"),
                   voids_refund=fields["3"] == ProcessingCode.VOID_REFUND.value,
                   operator=_de48(fields).get("OP"),
                   **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class CompletionAdvice(FinancialRequest):
    """0220: completes an authorization hold (DE38 its approval code, DE37 its RRN)."""

    MTI: ClassVar[str] = "0220"
    approval_code: str
    original_rrn: str | None = None
    repeat: bool = False

    @property
    def mti(self) -> str:
        """0220, or 0221 when repeated; a CUP completion's own (a request is an 0200)."""
        if self.cup_data is not None:
            return str(self.cup_data.mti)
        return "0221" if self.repeat else "0220"

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = super().to_fields()
        out["38"] = self.approval_code
        _put(out, "37", self.original_rrn)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> CompletionAdvice:
        """Parse a decoded 0220/0221."""
        kw = cls._financial_kwargs(fields, card_required=False)
        return cls(approval_code=_req(fields, "38"), original_rrn=fields.get("37"),
                   repeat=fields["t"] == "0221", **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class ReversalRequest(Message):
    """0400 (0401 when repeated): undo a request whose answer never arrived.

    Carries the original's STAN in DE11, its processing code, amount, terminal and merchant;
    DE90 when the terminal sends it; DE39 the reason (68 = response too late).
    """

    MTI: ClassVar[str] = "0400"
    processing_code: str
    amount: Money
    repeat: bool = False
    card: CardData | None = None
    original: OriginalData | None = None
    reason_code: str | None = "68"

    @property
    def mti(self) -> str:
        """0400, or 0401 for a repeat."""
        return "0401" if self.repeat else "0400"

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._base_fields()
        out["3"] = self.processing_code
        _put_money(out, self.amount)
        if self.card is not None:
            self.card.to_fields(out)
        if self.original is not None:
            out["90"] = self.original.to_field()
        _put(out, "39", self.reason_code)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> ReversalRequest:
        """Parse a decoded 0400/0401."""
        card = CardData.from_fields(fields) if ("2" in fields or "35" in fields) else None
        return cls(
            processing_code=_req(fields, "3"), amount=_money(fields),
            repeat=fields["t"] == "0401", card=card,
            original=OriginalData.from_field(fields["90"]) if "90" in fields else None,
            reason_code=fields.get("39"), **cls._base_kwargs(fields),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class BatchTotals:
    """Counts and amounts of a batch: debits are sales, credits are refunds."""

    currency: str
    debits_count: int = 0
    debits_minor: int = 0
    credits_count: int = 0
    credits_minor: int = 0

    def to_fields(self, out: Fields) -> None:
        """Write DE49 and DE74/76/86/88."""
        out["49"] = currency(self.currency).numeric
        out["74"] = f"{self.credits_count:010d}"
        out["76"] = f"{self.debits_count:010d}"
        out["86"] = f"{self.credits_minor:016d}"
        out["88"] = f"{self.debits_minor:016d}"

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> BatchTotals:
        """Read totals; absent counts read as zero."""
        try:
            cur = currency(_req(fields, "49")).alpha
        except ValueError:
            raise ValidationError("unknown currency code", field="49", fields=fields) from None
        return cls(cur, int(fields.get("76", "0")), int(fields.get("88", "0")),
                   int(fields.get("74", "0")), int(fields.get("86", "0")))


@dataclass(frozen=True, kw_only=True)
class ReconciliationRequest(Message):
    """0500: close the terminal's batch with its totals (960000 after a batch upload)."""

    MTI: ClassVar[str] = "0500"
    batch_number: str
    totals: BatchTotals
    after_upload: bool = False

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._base_fields()
        code = ProcessingCode.RECONCILE_AFTER_UPLOAD if self.after_upload else \
            ProcessingCode.RECONCILE
        out["3"] = code.value
        out["60"] = self.batch_number
        self.totals.to_fields(out)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> ReconciliationRequest:
        """Parse a decoded 0500."""
        return cls(batch_number=_batch_number(fields), totals=BatchTotals.from_fields(fields),
                   after_upload=fields.get("3") == ProcessingCode.RECONCILE_AFTER_UPLOAD.value,
                   **cls._base_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class BatchUploadRequest(Message):
    """0320: one transaction of a batch the host disagreed with (DE11 = its STAN)."""

    MTI: ClassVar[str] = "0320"
    batch_number: str
    processing_code: str
    amount: Money
    rrn: str
    approval_code: str | None = None
    local_time: str | None = None
    local_date: str | None = None

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._base_fields()
        out["3"] = self.processing_code
        _put_money(out, self.amount)
        out["37"] = self.rrn
        _put(out, "38", self.approval_code)
        _put(out, "12", self.local_time)
        _put(out, "13", self.local_date)
        out["60"] = self.batch_number
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> BatchUploadRequest:
        """Parse a decoded 0320."""
        return cls(batch_number=_batch_number(fields), processing_code=_req(fields, "3"),
                   amount=_money(fields), rrn=_req(fields, "37"),
                   approval_code=fields.get("38"), local_time=fields.get("12"),
                   local_date=fields.get("13"),
                   **cls._base_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class CupUploadRequest(Message):
    """0320 of the CUP profile: magnetic-stripe records of a batch the host disagreed with
    (60.3 ``201``, the records in :attr:`cup`), or the end of that upload (``207``)."""

    MTI: ClassVar[str] = "0320"
    batch_number: str

    @property
    def closing(self) -> bool:
        """True for the message that ends the upload (60.3 ``207``)."""
        return self.cup is not None and self.cup.record_count is not None


@dataclass(frozen=True, kw_only=True)
class NetworkRequest(Message):
    """0800: sign-on (001), sign-off (002) or echo (301)."""

    MTI: ClassVar[str] = "0800"
    code: NetworkCode

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._base_fields()
        out["70"] = self.code.value
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> NetworkRequest:
        """Parse a decoded 0800."""
        try:
            code = NetworkCode(_req(fields, "70"))
        except ValueError:
            raise ValidationError("unknown network management code", field="70",
                                  fields=fields) from None
        return cls(code=code, **cls._base_kwargs(fields))  # type: ignore[arg-type]


Request: TypeAlias = (
    AuthorizationRequest | SaleRequest | RefundRequest | VoidRequest | CompletionAdvice
    | ReversalRequest | ReconciliationRequest | BatchUploadRequest | NetworkRequest
    | CupUploadRequest
)


@dataclass(frozen=True, kw_only=True)
class Response(Message):
    """What every response carries besides the echoed trace: DE39, DE44, DE15, host time."""

    mti_value: str
    response_code: str
    rule: str | None = None  # DE44
    business_date: str | None = None  # DE15 MMDD
    host_time: str | None = None  # DE12
    host_date: str | None = None  # DE13

    @property
    def mti(self) -> str:
        """The response MTI."""
        return self.mti_value

    @property
    def approved(self) -> bool:
        """True when DE39 is 00."""
        return self.response_code == "00"

    @property
    def rule_id(self) -> RuleId | None:
        """The poslab rule id in DE44, when the host is poslab."""
        return RuleId.parse(self.rule) if self.rule else None

    def _response_fields(self) -> Fields:
        out = self._base_fields()
        out["39"] = self.response_code
        _put(out, "44", self.rule)
        _put(out, "15", self.business_date)
        _put(out, "12", self.host_time)
        _put(out, "13", self.host_date)
        return out

    @staticmethod
    def _response_kwargs(fields: Mapping[str, str]) -> dict[str, object]:
        kw: dict[str, object] = dict(Message._base_kwargs(fields))
        kw.update(mti_value=fields["t"], response_code=_req(fields, "39"),
                  rule=fields.get("44"), business_date=fields.get("15"),
                  host_time=fields.get("12"), host_date=fields.get("13"))
        return kw


@dataclass(frozen=True, kw_only=True)
class FinancialResponse(Response):
    """0110 / 0210 / 0230 / 0410: the host's answer to a financial request or reversal."""

    processing_code: str
    amount: Money | None = None
    rrn: str | None = None  # DE37, host-assigned
    approval_code: str | None = None  # DE38
    remaining: Money | None = None  # DE54 type 90
    pan: Pan | None = None  # DE2 echoed

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._response_fields()
        out["3"] = self.processing_code
        _put_money(out, self.amount)
        _put(out, "37", self.rrn)
        _put(out, "38", self.approval_code)
        if self.remaining is not None:
            out["54"] = encode_remaining(self.remaining)
        if self.pan is not None:
            out["2"] = self.pan.digits
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> FinancialResponse:
        """Parse a decoded financial response."""
        amount = _money(fields) if "4" in fields and "49" in fields else None
        return cls(processing_code=_req(fields, "3"), amount=amount, rrn=fields.get("37"),
                   approval_code=fields.get("38"),
                   remaining=decode_remaining(fields["54"]) if "54" in fields else None,
                   pan=_pan_field(fields["2"], "2", fields) if "2" in fields else None,
                   **cls._response_kwargs(fields))  # type: ignore[arg-type]

    def explanation(self) -> str:
        """Plain words for a person: the rule's explanation with the remaining amount."""
        rule = self.rule_id
        if rule is RuleId.REFUND_EXCEEDS_REMAINING and self.remaining is not None:
            return f"Refund exceeds the remaining {self.remaining.format()} of this sale"
        if rule is not None:
            return rule.explanation
        return response_text(self.response_code)


@dataclass(frozen=True, kw_only=True)
class ReconciliationResponse(Response):
    """0510: 00 when the totals agree (or after an upload), 95 when they differ."""

    batch_number: str | None = None
    processing_code: str | None = None
    totals: BatchTotals | None = None  # the host's totals

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._response_fields()
        _put(out, "3", self.processing_code)
        _put(out, "60", self.batch_number)
        if self.totals is not None:
            self.totals.to_fields(out)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> ReconciliationResponse:
        """Parse a decoded 0510."""
        totals = BatchTotals.from_fields(fields) if "49" in fields else None
        return cls(batch_number=fields.get("60"), processing_code=fields.get("3"),
                   totals=totals, **cls._response_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class BatchUploadResponse(Response):
    """0330: acknowledges one uploaded transaction."""

    rrn: str | None = None
    batch_number: str | None = None

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._response_fields()
        _put(out, "37", self.rrn)
        _put(out, "60", self.batch_number)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> BatchUploadResponse:
        """Parse a decoded 0330."""
        return cls(rrn=fields.get("37"), batch_number=fields.get("60"),
                   **cls._response_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class NetworkResponse(Response):
    """0810: answers sign-on, sign-off and echo; DE15 is the host's business date.

    :ivar wrapped_keys: DE62 of a sign-on answer: the working keys wrapped under the TMK, as hex
        (``protocol.security.wire.key_block_text``); None when the host sends none.
    """

    code: str | None = None
    wrapped_keys: str | None = field(default=None, repr=False)

    def to_fields(self) -> Fields:
        """The field dict for the codec."""
        out = self._response_fields()
        _put(out, "70", self.code)
        _put(out, "62", self.wrapped_keys)
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> NetworkResponse:
        """Parse a decoded 0810."""
        return cls(code=fields.get("70"), wrapped_keys=fields.get("62"),
                   **cls._response_kwargs(fields))  # type: ignore[arg-type]


@dataclass(frozen=True)
class WireResponse:
    """An answer already written as the field dict of its wire profile (a CUP answer, or one
    recalled as it was sent): sent as it is."""

    fields: Mapping[str, str]

    @property
    def mti(self) -> str:
        """The response MTI."""
        return self.fields["t"]

    @property
    def response_code(self) -> str:
        """DE39."""
        return self.fields.get("39", "")

    def to_fields(self) -> Fields:
        """The field dict for the codec (a copy)."""
        return dict(self.fields)


AnyResponse: TypeAlias = (
    FinancialResponse | ReconciliationResponse | BatchUploadResponse | NetworkResponse
)


def response_mti(request_mti: str) -> str:
    """0200 -> 0210, 0401 -> 0410, 0221 -> 0230: the answer's MTI."""
    return request_mti[:2] + str(int(request_mti[2]) + 1) + "0"


def parse_request(fields: Mapping[str, str]) -> Request:
    """Turn a decoded request into its typed message.

    Raises :class:`ValidationError` (with the fields, so the host can answer 30) when the
    MTI/processing-code pair is not one poslab handles or a field it needs is missing.
    """
    mti = _req(fields, "t")
    if mti == "0100":
        return AuthorizationRequest.from_fields(fields)
    if mti == "0200":
        code = _req(fields, "3")
        if code == ProcessingCode.PURCHASE.value:
            return SaleRequest.from_fields(fields)
        if code == ProcessingCode.REFUND.value:
            return RefundRequest.from_fields(fields)
        if code in (ProcessingCode.VOID_SALE.value, ProcessingCode.VOID_REFUND.value):
            return VoidRequest.from_fields(fields)
        raise ValidationError(f"processing code {code} is not handled in an 0200", field="3",
                              fields=fields)
    if mti in ("0220", "0221"):
        return CompletionAdvice.from_fields(fields)
    if mti in ("0400", "0401"):
        return ReversalRequest.from_fields(fields)
    if mti == "0500":
        return ReconciliationRequest.from_fields(fields)
    if mti == "0320":
        return BatchUploadRequest.from_fields(fields)
    if mti == "0800":
        return NetworkRequest.from_fields(fields)
    raise ValidationError(f"message type {mti} is not a request poslab handles", field="t",
                          fields=fields)


def parse_response(fields: Mapping[str, str]) -> AnyResponse:
    """Turn a decoded response into its typed message."""
    mti = _req(fields, "t")
    if mti in ("0110", "0210", "0230", "0410", "0430"):
        return FinancialResponse.from_fields(fields)
    if mti == "0510":
        return ReconciliationResponse.from_fields(fields)
    if mti == "0330":
        return BatchUploadResponse.from_fields(fields)
    if mti in ("0810", "0830"):
        return NetworkResponse.from_fields(fields)
    raise ValidationError(f"message type {mti} is not a response poslab handles", field="t",
                          fields=fields)
