"""Wire profiles as data: everything two peers must agree on to exchange messages.

A :class:`WireProfile` names a field table (each row carrying its own encodings, see
:mod:`protocol.fields`), a length header (:mod:`protocol.headers`), an optional TPDU, an optional
fixed message header, how each logical transaction is spelled (:mod:`protocol.transactions`),
the mandatory fields per transaction and direction, and a MAC slot. Profiles are looked up by
name; adding one is adding data here, not code elsewhere (docs/architecture.md).

This module also re-exports the field-table names it was once the home of, so existing imports
keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from protocol.fields import (
    ISO87,
    ISO87_ASCII,
    TABLES,
    FieldSpec,
    FieldTable,
    LengthCount,
    Sensitivity,
    compile_spec,
    field_table,
)
from protocol.headers import (
    LENGTH_HEADERS,
    Ascii4,
    Bcd2,
    Binary2,
    Encoding,
    LengthHeader,
    MessageHeader,
    TpduSpec,
    length_header,
)
from protocol.transactions import KNOWN_MTIS, Direction, FieldMatch, TxnRoute, TxnType

if TYPE_CHECKING:
    from protocol.messages import AnyResponse, Request, WireResponse

    RequestReader = Callable[[Mapping[str, str], "WireProfile"], tuple[TxnType, Request]]
    ResponseWriter = Callable[[Mapping[str, str], AnyResponse], WireResponse]

__all__ = [
    "DEFAULT_PROFILE", "GENERIC_MAC_MTIS", "GENERIC_ROUTES", "ISO87", "ISO87_ASCII", "KNOWN_MTIS",
    "LENGTH_HEADERS", "PROFILES", "TABLES", "Ascii4", "Bcd2", "Binary2", "Direction", "Encoding",
    "FieldMatch", "FieldSpec", "FieldTable", "LengthCount", "LengthHeader", "MessageHeader",
    "Sensitivity", "TpduSpec",
    "TxnRoute", "TxnType", "WireProfile", "compile_spec", "field_table", "get_profile",
    "length_header", "mandatory_fields",
]  # fmt: skip

# Mandatory request fields of the generic profile for strict hosts. Card data (DE2 or DE35) is
# checked separately, through ``card_required``.
_FINANCIAL = frozenset({"3", "4", "7", "11", "12", "13", "22", "25", "41", "42", "49"})
_REVERSAL = frozenset({"3", "4", "7", "11", "41", "42", "49"})
_SETTLEMENT = frozenset({"3", "7", "11", "41", "42", "49", "60", "74", "76", "86", "88"})
_UPLOAD = frozenset({"3", "4", "11", "37", "41", "42", "49", "60"})
_NETWORK = frozenset({"7", "11", "41", "42", "70"})

T, M = TxnType, FieldMatch
GENERIC_ROUTES: tuple[TxnRoute, ...] = (
    TxnRoute(T.AUTHORIZATION, "0100", "000000", keyed=False, request_fields=_FINANCIAL,
             card_required=True),
    TxnRoute(T.SALE, "0200", "000000", request_fields=_FINANCIAL, card_required=True),
    TxnRoute(T.REFUND, "0200", "200000", request_fields=_FINANCIAL, card_required=True),
    TxnRoute(T.VOID, "0200", "020000", request_fields=_FINANCIAL | {"37"}),
    TxnRoute(T.VOID_REFUND, "0200", "220000", request_fields=_FINANCIAL | {"37"}),
    TxnRoute(T.COMPLETION, "0220", "000000", keyed=False, repeat_mti="0221",
             request_fields=_FINANCIAL, card_required=True),
    TxnRoute(T.REVERSAL, "0400", None, keyed=False, repeat_mti="0401", request_fields=_REVERSAL),
    TxnRoute(T.SETTLEMENT_AFTER_UPLOAD, "0500", "960000", request_fields=_SETTLEMENT),
    TxnRoute(T.SETTLEMENT, "0500", "920000", keyed=False, request_fields=_SETTLEMENT),
    TxnRoute(T.BATCH_UPLOAD, "0320", None, keyed=False, request_fields=_UPLOAD),
    TxnRoute(T.SIGN_ON, "0800", None, keyed=False, match=(M("70", "001"),),
             request_fields=_NETWORK),
    TxnRoute(T.SIGN_OFF, "0800", None, keyed=False, match=(M("70", "002"),),
             request_fields=_NETWORK),
    TxnRoute(T.ECHO, "0800", None, keyed=False, match=(M("70", "301"),),
             request_fields=_NETWORK),
)
"""How the generic ISO 8583:1987 profile spells each logical transaction."""
del T, M

GENERIC_MAC_MTIS: frozenset[str] = frozenset({
    "0100", "0110", "0200", "0210", "0220", "0221", "0230",
    "0400", "0401", "0410", "0420", "0421", "0430",
})
"""The messages that carry a MAC on the generic profiles: the financial requests, their
repeats and reversals, and the responses to them."""


@dataclass(frozen=True, eq=False)
class WireProfile:
    """A field table plus framing and transaction spelling: one peer's dialect.

    :ivar table: the field table; each row says how its field is encoded.
    :ivar length_header: the frame's length prefix.
    :ivar tpdu: the TPDU after the length header, or None; a response swaps its addresses.
    :ivar message_header: a fixed header before the MTI, or None.
    :ivar routes: how each logical transaction is spelled, with its mandatory fields.
    :ivar mac_field: / :ivar mac_scheme: where a MAC goes (the last field, see
        :mod:`protocol.security.wire`) and its scheme in :data:`protocol.security.MAC_SCHEMES`
        (for TDES keys; AES keys use AES-CMAC).
    :ivar mac_mtis: the messages that carry a MAC when the terminal's keys call for one.
    :ivar security_control: how DE53 is spelled, a
        :class:`protocol.security.wire.ControlLayout` value (``poslab`` or ``cup``).
    :ivar reader: / :ivar writer: for a profile with private fields of its own (CUP): how a
        request's field dict becomes its transaction and typed message, and how a typed answer
        becomes the profile's field dict (:mod:`protocol.cup_messages`); None on the generic
        profiles, whose field dicts are the typed messages' own.
    """

    name: str
    table: FieldTable = field(repr=False)
    length_header: LengthHeader
    description: str
    tpdu: TpduSpec | None = None
    message_header: MessageHeader | None = None
    routes: tuple[TxnRoute, ...] = field(default=GENERIC_ROUTES, repr=False)
    mac_field: int | None = None
    mac_scheme: str | None = None
    mac_mtis: frozenset[str] = frozenset()
    security_control: str = "poslab"
    reader: RequestReader | None = field(default=None, repr=False)
    writer: ResponseWriter | None = field(default=None, repr=False)
    _by_mti: Mapping[str, tuple[TxnRoute, ...]] = field(init=False, repr=False)
    _by_txn: Mapping[TxnType, TxnRoute] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_mti: dict[str, list[TxnRoute]] = {}
        for route in self.routes:
            for mti in route.mtis:
                by_mti.setdefault(mti, []).append(route)
        # Routes that something identifies are tried before a catch-all of the same MTI.
        ordered = {mti: tuple(sorted(rs, key=lambda r: not (r.keyed or r.match)))
                   for mti, rs in by_mti.items()}
        object.__setattr__(self, "_by_mti", ordered)
        object.__setattr__(self, "_by_txn", {r.txn: r for r in self.routes})

    def spec(self) -> dict[str, dict[str, Any]]:
        """The pyiso8583 spec dict of this profile (a fresh copy)."""
        return compile_spec(self.table, self.message_header)

    def identify(self, mti: str, processing_code: str | None = None,
                 fields: Mapping[str, str] | None = None) -> TxnType | None:
        """The logical transaction of a request, or None when this profile has no such one.

        ``fields`` supplies any other identifying field (DE70 for the 0800s here).
        """
        route = self._identify(mti, processing_code, fields or {})
        return route.txn if route is not None else None

    def _identify(self, mti: str, processing_code: str | None,
                  fields: Mapping[str, str]) -> TxnRoute | None:
        for route in self._by_mti.get(mti, ()):
            if route.matches(processing_code, fields):
                return route
        return None

    def route(self, txn: TxnType) -> TxnRoute:
        """How ``txn`` is spelled; ValueError when the profile does not carry it."""
        try:
            return self._by_txn[txn]
        except KeyError:
            raise ValueError(f"wire profile {self.name!r} has no {txn.value} message") from None

    def message_for(self, txn: TxnType) -> tuple[str, str | None]:
        """(MTI, processing code) of a request for ``txn``; the code is None when it carries
        the original's (reversal, batch upload) or DE3 is absent (network management)."""
        route = self.route(txn)
        return route.mti, route.processing_code

    def mandatory(self, txn: TxnType, direction: Direction = Direction.REQUEST) -> frozenset[str]:
        """The fields a strict peer requires in ``txn`` travelling ``direction``."""
        return self.route(txn).mandatory(direction)

    def mandatory_fields(self, mti: str, processing_code: str | None,
                         fields: Mapping[str, str] | None = None) -> frozenset[str]:
        """The fields a strict host requires in a request of this MTI and processing code.

        When nothing identifies the request, the fields every transaction of its MTI that is
        not told apart by DE3 requires (an 0800 without DE70 still needs DE70); an unknown
        processing code requires nothing here (the parser rejects it).
        """
        route = self._identify(mti, processing_code, fields or {})
        if route is not None:
            return route.request_fields
        common = [r.request_fields for r in self._by_mti.get(mti, ()) if not r.keyed]
        return frozenset.intersection(*common) if common else frozenset()

    def missing_field(self, fields: Mapping[str, str]) -> str | None:
        """The first field a strict host requires that ``fields`` lacks (``"2"`` for card data)."""
        mti, code = fields.get("t", ""), fields.get("3")
        for key in sorted(self.mandatory_fields(mti, code, fields), key=int):
            if key not in fields:
                return key
        route = self._identify(mti, code, fields)
        if route is not None and route.card_required and "2" not in fields \
                and "35" not in fields:
            return "2"
        return None


_GENERIC_MAC: dict[str, Any] = {"mac_field": 64, "mac_scheme": "x9.19",
                                "mac_mtis": GENERIC_MAC_MTIS}

PROFILES: dict[str, WireProfile] = {
    p.name: p
    for p in (
        WireProfile(
            "iso87-ascii", ISO87_ASCII, length_header("2b"),
            "ISO 8583:1987, ASCII fields, binary bitmap, 2-byte binary length (default)",
            **_GENERIC_MAC,
        ),
        WireProfile(
            "iso87-ascii-4a", ISO87_ASCII, length_header("4a"),
            "ISO 8583:1987, ASCII fields, binary bitmap, 4 ASCII digit length",
            **_GENERIC_MAC,
        ),
        WireProfile(
            "iso87-ascii-tpdu", ISO87_ASCII, length_header("2b"),
            "ISO 8583:1987, ASCII fields, 2-byte binary length followed by a 5-byte TPDU",
            tpdu=TpduSpec(),
            **_GENERIC_MAC,
        ),
    )
}  # fmt: skip
"""Every selectable wire profile by name."""


def _register_cup() -> None:
    # protocol.cup builds its profile from this module's WireProfile, so it is imported here,
    # after everything it needs is defined.
    from protocol.cup import CUP_PROFILE

    PROFILES[CUP_PROFILE.name] = CUP_PROFILE


_register_cup()

DEFAULT_PROFILE = "iso87-ascii"


def get_profile(name: str) -> WireProfile:
    """Look a profile up by name, with an error that lists the valid names."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown wire profile {name!r}; choose one of: {', '.join(sorted(PROFILES))}"
        ) from None


def mandatory_fields(mti: str, processing_code: str | None) -> frozenset[str]:
    """The default profile's :meth:`WireProfile.mandatory_fields`."""
    return PROFILES[DEFAULT_PROFILE].mandatory_fields(mti, processing_code)
