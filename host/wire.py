"""Field numbers, in the one host module that spells them outside the codec.

The core works on typed messages (:mod:`protocol.messages`) and :class:`Echo`; what it must
know of a request before typed parsing, or of an answer it forces, is read and written here:
what every answer echoes, the facts of a log line, the card number, the free text of a refund
or void, the transmission times a lenient host fills in, the fields left out of a request's
content fingerprint, and the field dict of a forced answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from protocol.codes import ProcessingCode
from protocol.errors import ValidationError
from protocol.masking import Pan
from protocol.messages import response_mti
from protocol.money import Money
from protocol.money import currency as currency_by_code
from protocol.specs import KNOWN_MTIS
from protocol.validate import validate_fields

#: Fields left out of a request's content fingerprint: transmission times (part of the key),
#: card secrets (never hashed into anything) and MACs.
VOLATILE = frozenset({"t", "p", "h", "7", "12", "13", "2", "35", "45", "36", "52", "55", "64",
                      "128"})
#: DE3 of the 0200s whose DE48 carries free text (refund, void of a sale, void of a refund).
_FREE_TEXT_CODES = frozenset({ProcessingCode.REFUND.value, ProcessingCode.VOID_SALE.value,
                              ProcessingCode.VOID_REFUND.value})
#: MTIs that carry a local transaction date and time (DE12, DE13).
_LOCAL_TIME_MTIS = frozenset({"0100", "0200", "0220", "0221"})
#: Fields a forced answer echoes from a request nobody processed.
_FORCED_ECHO = ("3", "4", "11", "41", "42", "49", "7", "37")
#: The key of the MTI in a field mapping.
MTI = "t"
#: Fields a declined or unreadable request's answer echoes, when they are valid.
_ECHOED = ("3", "4", "7", "11", "41", "42", "49")
#: What an answer needs to be addressed at all: MTI, STAN and terminal.
_ADDRESS = frozenset({"t", "11", "41"})


@dataclass(frozen=True)
class Echo:
    """What an answer to a request echoes of it, read without typed parsing (which may be what
    failed): enough to address a decline that books nothing."""

    mti: str
    stan: str
    terminal_id: str
    merchant_id: str
    transmitted_at: str | None
    processing_code: str | None
    amount: Money | None
    network_code: str | None
    batch_number: str | None
    rrn: str | None
    amount_text: str | None = None

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> Echo:
        """The echoed facts of ``fields`` (a missing MTI reads as 0200)."""
        amount = None
        try:
            if "4" in fields and "49" in fields:
                amount = Money(int(fields["4"]), currency_by_code(fields["49"]).alpha)
        except ValueError:
            amount = None
        return cls(mti=fields.get("t", "0200"), stan=fields.get("11", "000000"),
                   terminal_id=fields.get("41", " " * 8),
                   merchant_id=fields.get("42", " " * 15), transmitted_at=fields.get("7"),
                   processing_code=fields.get("3"), amount=amount,
                   network_code=fields.get("70"), batch_number=fields.get("60"),
                   rrn=fields.get("37"), amount_text=fields.get("4"))


def forced_answer(request: Mapping[str, str], code: str, rule: str,
                  processed: Mapping[str, str] | None = None) -> dict[str, str]:
    """The field dict of an answer the host forces (a fault rule): DE39 ``code``, DE44
    ``rule``, no approval code on a decline. Built on the real answer's fields when the request
    was processed (its RRN stays), otherwise on the request's ids and amounts."""
    if processed is not None:
        out = dict(processed)
    else:
        out = {k: request[k] for k in _FORCED_ECHO if k in request}
        out["t"] = response_mti(request.get("t", "0200"))
    out["39"] = code
    out["44"] = rule
    if code != "00":
        out.pop("38", None)
    return out


def log_ids(fields: Mapping[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
    """The request's MTI, STAN, TID and MID for its log line (None when absent)."""
    return fields.get("t"), fields.get("11"), fields.get("41"), fields.get("42")


def add_amount(fields: Mapping[str, str], out: dict[str, object]) -> None:
    """Add the request's amount (minor units) and currency code to a log line, when known."""
    if "4" in fields and fields["4"].isdigit():
        out["amount_minor"] = int(fields["4"])
    if "49" in fields:
        out["currency"] = fields["49"]


def echoable(fields: Mapping[str, str], bad_field: str | None) -> dict[str, str] | None:
    """What an answer to a request that broke the spec may echo: the valid echo fields but the
    bad one, and a known MTI (answerable even when poslab does not handle it); None when the
    MTI, STAN or terminal cannot be echoed, so no answer can be addressed."""
    mti = fields.get("t")
    checked_as = fields.get("t", "0200")
    usable = {k: v for k, v in fields.items() if k in _ECHOED and _valid(k, v, checked_as)}
    if bad_field in usable:
        usable.pop(bad_field)
    if mti in KNOWN_MTIS:
        usable["t"] = mti
    return usable if _ADDRESS <= usable.keys() else None


def _valid(key: str, value: str, mti: str) -> bool:
    try:
        validate_fields({"t": mti, key: value})
    except ValidationError:
        return False
    return True


def pan_of(fields: Mapping[str, str]) -> Pan | None:
    """The request's card number (DE2, else the PAN part of DE35), or None."""
    digits = fields.get("2")
    if digits is None and "35" in fields:
        digits = fields["35"].replace("D", "=").split("=", 1)[0]
    if not digits or not digits.isdigit():
        return None
    return Pan(digits)


def mti_of(fields: Mapping[str, str]) -> str:
    """The request's MTI, or ``""``."""
    return fields.get("t", "")


def free_text(fields: Mapping[str, str]) -> str | None:
    """DE48 of a refund or void (terminal-typed evidence and operator), else None."""
    text = fields.get("48")
    if text is None or fields.get("t") != "0200" or fields.get("3") not in _FREE_TEXT_CODES:
        return None
    return text


def with_free_text(fields: dict[str, str], text: str) -> None:
    """Replace the request's free text (DE48) with ``text`` (its card numbers masked)."""
    fields["48"] = text


def fill_times(fields: dict[str, str], now: datetime) -> None:
    """Fill DE7 and, where the MTI carries them, DE12/DE13 from ``now`` when absent: a
    lenient host answers what it can."""
    if "7" not in fields:
        fields["7"] = now.strftime("%m%d%H%M%S")
    if fields.get("t") in _LOCAL_TIME_MTIS:
        if "12" not in fields:
            fields["12"] = now.strftime("%H%M%S")
        if "13" not in fields:
            fields["13"] = now.strftime("%m%d")


def fingerprint_doc(fields: Mapping[str, str]) -> dict[str, str]:
    """What a request's content fingerprint covers: every stable field, plus its MTI class
    (the card number is added hashed by the caller)."""
    doc = {k: v for k, v in fields.items() if k not in VOLATILE}
    doc["class"] = fields.get("t", "")[:3]
    return doc
