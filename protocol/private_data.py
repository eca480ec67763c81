"""Layouts poslab defines inside private and additional-data fields.

**DE48 (additional data, private use)** is a run of tag-length-value items: a 2-character tag,
a 3-digit length and the value. Unknown tags are kept and ignored. Tags:

=====  =========================================================================
``RS``  refund reason: ``transaction_failure``, ``payment_error``, ``product_recall``,
        ``return`` or ``other``
``EV``  evidence reference (receipt number, RMA, ticket id), free text
``OP``  operator id at the terminal (supervisor who authorised the refund or void)
=====  =========================================================================

Example: ``RS006returnOP0021`` is reason *return*, operator *1*... with the length counting
characters of the value (``RS006return`` = tag ``RS``, length ``006``, value ``return``).

**DE54 (additional amounts)** carries one 20-character amount block: account type (2),
amount type (2), ISO 4217 numeric currency (3), sign ``C``/``D`` (1), amount in minor units
(12). poslab uses amount type ``90`` (private) for *the remaining refundable amount of the
original sale*, sent with refund approvals and over-refund declines so a terminal can say
"Refund exceeds the remaining 40.00 of this sale".
"""

from __future__ import annotations

from protocol.errors import ValidationError
from protocol.money import Money, currency

REMAINING_AMOUNT_TYPE = "90"


def encode_tlv(items: dict[str, str]) -> str:
    """``{"RS": "return"}`` -> ``"RS006return"``."""
    out = []
    for tag, value in items.items():
        if len(tag) != 2 or len(value) > 999:
            raise ValueError(f"bad DE48 item {tag!r}")
        out.append(f"{tag}{len(value):03d}{value}")
    return "".join(out)


def decode_tlv(text: str) -> dict[str, str]:
    """Parse a DE48 run of tag-length-value items; raise ValidationError when it is cut short."""
    items: dict[str, str] = {}
    i = 0
    while i < len(text):
        tag, size = text[i : i + 2], text[i + 2 : i + 5]
        if len(size) != 3 or not size.isdigit():
            raise ValidationError(f"DE48 item at offset {i} has no 3-digit length", field="48")
        end = i + 5 + int(size)
        if end > len(text):
            raise ValidationError(f"DE48 item {tag!r} runs past the end of the field", field="48")
        items[tag] = text[i + 5 : end]
        i = end
    return items


def encode_remaining(amount: Money) -> str:
    """DE54 block for the remaining refundable amount."""
    return f"00{REMAINING_AMOUNT_TYPE}{currency(amount.currency).numeric}C{amount.minor:012d}"


def decode_remaining(text: str) -> Money | None:
    """The remaining refundable amount from DE54, or None when the field holds none."""
    for i in range(0, len(text) - 19, 20):
        block = text[i : i + 20]
        if block[2:4] == REMAINING_AMOUNT_TYPE and block[8:].isdigit():
            try:
                return Money(int(block[8:]), currency(block[4:7]).alpha)
            except ValueError:
                return None
    return None
