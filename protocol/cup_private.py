"""The CUP POS private fields, read and written: DE60, DE61, DE48 totals and upload records.

All are digit strings (BCD on the wire, digits in a field dict):

* **DE60** — ``60.1`` transaction type (2) | ``60.2`` batch number (6) | ``60.3`` network
  management code (3) | ``60.4`` terminal read capability (1) | ``60.5`` IC card condition (1)
  | later subfields (up to 17 digits in all).
  Later subfields are optional; a sale is ``22`` + batch, a sign-on ``00`` + batch + ``004``.
* **DE61** — original batch (6) | original trace (6) | original date MMDD (4); a void names the
  original by batch and trace, a refund by its date (with the original RRN in DE37).
* **DE48 of the 0500/0510** — 62 digits: for domestic then foreign cards, debit amount (12),
  debit count (3), credit amount (12), credit count (3), result flag (1: ``1`` balanced, ``2``
  not balanced, ``0`` as the terminal sends it).
* **DE48 of the 0320 magnetic-stripe upload** — record count (2), then 40 digits per record:
  card type (2: ``00`` domestic, ``01`` foreign), trace (6), PAN right-aligned and zero-padded
  (20), amount (12).

Each parser raises :class:`~protocol.errors.ValidationError` naming the field and the subfield.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.errors import ValidationError


def _need_digits(key: str, text: str, what: str, lengths: tuple[int, ...]) -> None:
    if not text.isdigit():
        raise ValidationError(f"{what} must be digits", field=key)
    if len(text) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        raise ValidationError(f"{what} must be {allowed} digits, got {len(text)}", field=key)


@dataclass(frozen=True)
class De60:
    """DE60: transaction type, batch, network management code, and the optional read flags."""

    type_code: str
    batch: str
    network_code: str = "000"
    read_capability: str = ""
    ic_condition: str = ""
    rest: str = ""  # 60.6 onwards (partial-approval flag, ...), kept as sent

    @classmethod
    def parse(cls, text: str) -> De60:
        """Read DE60 (8 digits at least: type and batch)."""
        _need_digits("60", text, "DE60 (60.1 type + 60.2 batch ...)", tuple(range(8, 18)))
        return cls(text[0:2], text[2:8], text[8:11] or "000", text[11:12], text[12:13],
                   text[13:])

    def text(self) -> str:
        """The digits of DE60 (the read flags only when set)."""
        return (self.type_code + self.batch + self.network_code + self.read_capability
                + self.ic_condition + self.rest)


@dataclass(frozen=True)
class De61:
    """DE61: the original transaction's batch, trace (STAN) and date (MMDD)."""

    batch: str
    trace: str
    date_mmdd: str = "0000"

    @classmethod
    def parse(cls, text: str) -> De61:
        """Read DE61 (12 or 16 digits; later subfields are ignored)."""
        if len(text) > 16:
            text = text[:16]
        _need_digits("61", text, "DE61 (61.1 batch + 61.2 trace [+ 61.3 MMDD])", (12, 16))
        return cls(text[0:6], text[6:12], text[12:16] or "0000")

    def text(self) -> str:
        """The 16 digits of DE61."""
        return self.batch + self.trace + self.date_mmdd


class SettlementResult(enum.Enum):
    """The result flag of CUP settlement totals."""

    SENT = "0"  # as a terminal sends it
    BALANCED = "1"  # 对账平
    NOT_BALANCED = "2"  # 对账不平


@dataclass(frozen=True)
class SchemeTotals:
    """Debits and credits of one card group (domestic or foreign), in minor units."""

    debit_amount: int = 0
    debit_count: int = 0
    credit_amount: int = 0
    credit_count: int = 0

    def text(self) -> str:
        """30 digits: debit amount and count, credit amount and count."""
        return (f"{self.debit_amount:012d}{self.debit_count:03d}"
                f"{self.credit_amount:012d}{self.credit_count:03d}")

    @classmethod
    def parse(cls, text: str) -> SchemeTotals:
        """Read 30 digits."""
        return cls(int(text[0:12]), int(text[12:15]), int(text[15:27]), int(text[27:30]))


@dataclass(frozen=True)
class CupTotals:
    """DE48 of a CUP 0500/0510: domestic and foreign totals, each with the result flag."""

    domestic: SchemeTotals
    foreign: SchemeTotals = SchemeTotals()
    result: SettlementResult = SettlementResult.SENT

    @classmethod
    def parse(cls, text: str) -> CupTotals:
        """Read the 62 (or, with the foreign half omitted, 31) digits."""
        _need_digits("48", text, "DE48 settlement totals", (31, 62))
        flags = {text[30], text[61]} if len(text) == 62 else {text[30]}
        if len(flags) != 1 or (flag := flags.pop()) not in {r.value for r in SettlementResult}:
            raise ValidationError("DE48 settlement totals: result flags must agree and be "
                                  "0, 1 or 2", field="48")
        foreign = SchemeTotals.parse(text[31:61]) if len(text) == 62 else SchemeTotals()
        return cls(SchemeTotals.parse(text[0:30]), foreign, SettlementResult(flag))

    def text(self) -> str:
        """The 62 digits of DE48."""
        flag = self.result.value
        return self.domestic.text() + flag + self.foreign.text() + flag


@dataclass(frozen=True, repr=False)
class UploadRecord:
    """One magnetic-stripe transaction in a CUP 0320 upload (carries a PAN: never log it)."""

    foreign: bool
    trace: str
    pan: str
    amount: int

    def text(self) -> str:
        """40 digits: card type, trace, PAN right-aligned in 20, amount."""
        return f"{'01' if self.foreign else '00'}{self.trace}{self.pan:0>20}{self.amount:012d}"

    def __repr__(self) -> str:
        return f"UploadRecord(trace={self.trace}, amount={self.amount})"


def parse_upload(text: str) -> list[UploadRecord]:
    """Read the DE48 of a 0320 upload: a 2-digit count, then that many 40-digit records."""
    if not text.isdigit() or len(text) < 2:
        raise ValidationError("DE48 upload records must be digits with a 2-digit count",
                              field="48")
    count = int(text[:2])
    if len(text) != 2 + 40 * count:
        raise ValidationError(f"DE48 upload: count {count} needs {2 + 40 * count} digits, "
                              f"got {len(text)}", field="48")
    records = []
    for i in range(count):
        r = text[2 + 40 * i: 42 + 40 * i]
        if r[0:2] not in ("00", "01"):
            raise ValidationError(f"DE48 upload record {i + 1}: card type must be 00 or 01",
                                  field="48")
        records.append(UploadRecord(r[0:2] == "01", r[2:8], r[8:28].lstrip("0"), int(r[28:40])))
    return records


def upload_text(records: list[UploadRecord]) -> str:
    """The DE48 of a 0320 upload carrying ``records`` (at most 8 fit in 322 digits)."""
    if len(records) > 8:
        raise ValueError("a CUP upload message carries at most 8 records")
    return f"{len(records):02d}" + "".join(r.text() for r in records)


@dataclass(frozen=True)
class CupFacts:
    """What a CUP message carries beyond poslab's typed message: the request's own MTI, DE60,
    DE61, the operator of DE63, and the DE48 of a settlement or an upload.

    Requests get it from :func:`protocol.cup_messages.parse_cup_request`; the host sets it on
    an answer that must carry CUP data back (the host's batch in an 0810, the totals of an
    0510). Generic messages carry none.

    :ivar mti: the MTI as sent (a refund is ``0220``, a sign-off ``0820``).
    :ivar de60: DE60 (for an answer: the DE60 to send).
    :ivar original: DE61 of a void, refund, completion or pre-authorization cancel.
    :ivar operator: DE63 of a sign-on or settlement.
    :ivar approval_code: DE38 of a request that quotes its original's approval code (a
        completion, a pre-authorization cancel, a completion void).
    :ivar totals: DE48 of an 0500 (as the terminal counted) or an 0510 (as answered).
    :ivar records: DE48 of an 0320 with 60.3 ``201``.
    :ivar record_count: DE48 of the closing 0320 (60.3 ``207``): how many records were sent.
    """

    mti: str
    de60: De60
    original: De61 | None = None
    operator: str | None = None
    totals: CupTotals | None = None
    records: tuple[UploadRecord, ...] = ()
    record_count: int | None = None
    approval_code: str | None = None

    @property
    def batch(self) -> str:
        """60.2: the batch the message belongs to."""
        return self.de60.batch

    @property
    def network_code(self) -> str:
        """60.3: the network management code."""
        return self.de60.network_code
