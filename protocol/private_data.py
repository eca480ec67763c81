"""Layouts poslab defines inside private and additional-data fields.

**DE48 (additional data, private use)** is a run of tag-length-value items: a 2-character tag,
a 3-digit length (characters of the value, zero-padded) and the value. Unknown tags are kept
and ignored. Tags:

=====  =========================================================================
``RS``  refund reason: ``transaction_failure``, ``payment_error``, ``product_recall``,
        ``return`` or ``other``
``EV``  evidence reference (receipt number, RMA, ticket id), free text
``OP``  operator id at the terminal (supervisor who authorised the refund or void)
=====  =========================================================================

Example: ``RS006returnEV008RMA-1234OP004ANNA`` is reason *return* (``RS`` ``006`` ``return``),
evidence *RMA-1234* and operator *ANNA*. A malformed run raises :class:`De48Error`, whose
:attr:`~De48Error.response_text` (for DE44) names the tag, its offset in DE48 and what is
wrong, e.g. ``48:OP@11 LEN 021>1 LEFT`` for ``RS006returnOP0211``.

**DE54 (additional amounts)** carries one 20-character amount block: account type (2),
amount type (2), ISO 4217 numeric currency (3), sign ``C``/``D`` (1), amount in minor units
(12). poslab uses amount type ``90`` (private) for *the remaining refundable amount of the
original sale*, sent with refund approvals and over-refund declines so a terminal can say
"Refund exceeds the remaining 40.00 of this sale".
"""

from __future__ import annotations

from typing import NamedTuple

from protocol.errors import ValidationError
from protocol.masking import scrub
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


class TlvItem(NamedTuple):
    """One DE48 item: ``offset`` is where its tag starts in DE48 (0-based)."""

    tag: str
    offset: int
    value: str


class De48Error(ValidationError):
    """DE48 breaks the tag-length-value layout or a limit on one of its items.

    :ivar response_text: at most 25 characters for DE44: ``48:<tag>@<offset> <what>``.
    """

    def __init__(self, reason: str, response_text: str) -> None:
        super().__init__(reason, field="48")
        self.response_text = response_text[:25]


def tlv_items(text: str) -> list[TlvItem]:
    """Parse a DE48 run of tag-length-value items in order; raise :class:`De48Error` when an
    item has no 3-digit length or runs past the end of the field."""
    items: list[TlvItem] = []
    i = 0
    while i < len(text):
        tag, size = text[i : i + 2], text[i + 2 : i + 5]
        if len(size) != 3 or not size.isdigit():
            what = "cut short" if i + 5 > len(text) else f"length {size!r} is not 3 digits"
            raise De48Error(f"DE48 item {tag!r} at offset {i}: {what}",
                            f"48:{tag}@{i} " + ("CUT SHORT" if i + 5 > len(text) else
                                                "LEN NOT 3 DIGITS"))
        left = len(text) - i - 5
        if int(size) > left:
            raise De48Error(f"DE48 item {tag!r} at offset {i}: length {size} but only {left} "
                            f"characters follow", f"48:{tag}@{i} LEN {size}>{left} LEFT")
        items.append(TlvItem(tag, i, text[i + 5 : i + 5 + int(size)]))
        i += 5 + int(size)
    return items


def decode_tlv(text: str) -> dict[str, str]:
    """Parse a DE48 run of tag-length-value items (:func:`tlv_items`) into tag -> value."""
    return {item.tag: item.value for item in tlv_items(text)}


def check_lengths(text: str, limits: dict[str, int]) -> None:
    """Raise :class:`De48Error` naming the limit when an item of ``text`` is longer than
    ``limits[tag]`` characters."""
    for item in tlv_items(text):
        limit = limits.get(item.tag)
        if limit is not None and len(item.value) > limit:
            raise De48Error(f"DE48 item {item.tag!r} at offset {item.offset} is "
                            f"{len(item.value)} characters; at most {limit} are allowed",
                            f"48:{item.tag}@{item.offset} LEN {len(item.value)}>MAX {limit}")


def mask_card_numbers(text: str) -> str:
    """DE48 with every card number inside an item's value masked (:func:`protocol.scrub`).

    Masking keeps each value's length, so the layout and the lengths stay valid. Raises
    :class:`De48Error` when ``text`` is malformed.
    """
    return "".join(f"{i.tag}{len(i.value):03d}{scrub(i.value)}" for i in tlv_items(text))


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
