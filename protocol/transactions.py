"""Logical transactions and how a wire profile spells them.

Host, terminal and scenarios think in :class:`TxnType` (sale, refund, void ...). A profile's
:class:`TxnRoute` rows say which MTI and processing code carry each one, which other fields
tell it apart, and which fields each direction must carry; :class:`~protocol.specs.WireProfile`
answers ``identify(mti, processing_code, fields)`` and ``message_for(txn)`` from them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


class TxnType(enum.StrEnum):
    """A transaction as a person names it, whatever the wire profile calls it."""

    AUTHORIZATION = "authorization"
    SALE = "sale"
    VOID = "void"  # of a sale
    VOID_REFUND = "void_refund"
    REFUND = "refund"
    COMPLETION = "completion"  # of an authorization
    VOID_COMPLETION = "void_completion"  # a void of a completion: the hold is live again
    AUTH_CANCEL = "auth_cancel"  # releases an authorization hold before it is completed
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    SETTLEMENT_AFTER_UPLOAD = "settlement_after_upload"
    BATCH_UPLOAD = "batch_upload"
    SIGN_ON = "sign_on"
    SIGN_OFF = "sign_off"
    ECHO = "echo"


@dataclass(frozen=True)
class FieldMatch:
    """A field value that identifies a transaction: ``value`` found at ``offset`` of the field.

    A CUP profile keys financial messages on DE60.1 (``FieldMatch("60", "22")``) and network
    management on DE60.3 (``FieldMatch("60", "004", offset=8)``).
    """

    key: str
    value: str
    offset: int = 0

    def __call__(self, fields: Mapping[str, str]) -> bool:
        """True when ``fields`` carries the value at the offset."""
        return fields.get(self.key, "").startswith(self.value, self.offset)


class Direction(enum.Enum):
    """Which way a message travels."""

    REQUEST = "request"
    RESPONSE = "response"


@dataclass(frozen=True)
class TxnRoute:
    """How one logical transaction looks on the wire in one profile.

    :ivar mti: the request MTI; ``repeat_mti`` the MTI of a repeated request (0221, 0401).
    :ivar processing_code: DE3 to send; ``None`` when the message carries the original's.
    :ivar keyed: whether DE3's transaction-type digits (its first two) identify the
        transaction; a route that is not keyed matches any DE3 of its MTI.
    :ivar match: other field values that identify it (DE70 ``001`` for a sign-on).
    :ivar request_fields: / :ivar response_fields: fields a strict peer requires.
    :ivar card_required: the request must carry card data (DE2 or DE35).
    """

    txn: TxnType
    mti: str
    processing_code: str | None = None
    keyed: bool = True
    match: tuple[FieldMatch, ...] = ()
    repeat_mti: str | None = None
    request_fields: frozenset[str] = frozenset()
    response_fields: frozenset[str] = frozenset()
    card_required: bool = False

    def __post_init__(self) -> None:
        if self.keyed and self.processing_code is None:
            raise ValueError(f"{self.txn}: a route keyed on DE3 needs a processing code")

    @property
    def mtis(self) -> tuple[str, ...]:
        """Every request MTI of this route."""
        return (self.mti,) if self.repeat_mti is None else (self.mti, self.repeat_mti)

    def matches(self, processing_code: str | None, fields: Mapping[str, str]) -> bool:
        """True when DE3 (if keyed) and every ``match`` field identify this transaction."""
        if self.keyed and (processing_code is None or self.processing_code is None
                           or processing_code[:2] != self.processing_code[:2]):
            return False
        return all(rule(fields) for rule in self.match)

    def mandatory(self, direction: Direction) -> frozenset[str]:
        """The fields this direction must carry."""
        return self.request_fields if direction is Direction.REQUEST else self.response_fields


KNOWN_MTIS: frozenset[str] = frozenset(
    {
        "0100", "0110", "0120", "0121", "0130",
        "0200", "0210", "0220", "0221", "0230",
        "0320", "0330",
        "0400", "0401", "0410", "0420", "0421", "0430",
        "0500", "0510",
        "0800", "0810", "0820", "0830",
    }
)  # fmt: skip
"""Message types poslab speaks; anything else is a validation error."""
