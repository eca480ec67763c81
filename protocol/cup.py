"""The China UnionPay POS profile (terminal <-> acquirer): its field table, framing and routes.

CUP terminals frame each message as a 2-byte binary length, a 5-byte TPDU (``60`` +
destination + source; a response swaps the two addresses) and a 6-byte BCD message header
(application class, software version, terminal status, processing request, sub-version), then a
BCD MTI, a binary bitmap and the fields:

* numeric fields (``n``, and track data ``z``) in BCD: a fixed field with an odd number of digits
  is padded on the left with ``0``; a variable one counts its length in digits, carries a BCD
  LL/LLL prefix and is padded on the right with ``F``;
* text fields (``an``/``ans``: DE37, 38, 39, 41, 42, 49, 63 ...) in ASCII, with BCD prefixes;
* binary fields (DE52, DE55, DE62, DE64) as bytes, with BCD prefixes counting bytes.

Transactions are told apart by MTI + the first two digits of DE3 + DE25 + DE60.1 (financial)
or MTI + DE60.3 (management): a refund is ``0220 / 20 / 00 / 25`` — an advice-class message — and
a void ``0200 / 20 / 00 / 23``. The pre-authorization family keys on DE25 ``06``: the
pre-authorization ``0100 / 03 / 06 / 10``, its cancel ``0100 / 20 / 06 / 11``, the completion
request ``0200 / 00 / 06 / 20``, the completion advice (offline completion, an advice like the
refund) ``0220 / 00 / 06 / 24`` and the completion void ``0200 / 20 / 06 / 21``. The private
fields DE60 (type, batch, network code), DE61 (original batch, trace and date) and DE48
(settlement totals, upload records) have their own layouts in :mod:`protocol.cup_private`. The
MAC is the CUP "ECB" POS MAC in DE64.

Sign-on comes in three kinds by 60.3: ``001`` (single-length DES PIN and MAC keys in the
0810's DE62), ``003`` (double-length TDES PIN and MAC keys) and ``004`` (double-length PIN, MAC
and track-data keys). Not (yet) carried: balance inquiry (``0200/31/00/01``), e-cash and SM4
sign-on (60.3 ``006``).
"""

from __future__ import annotations

import dataclasses

from protocol.cup_messages import cup_response_fields, parse_cup_request
from protocol.fields import ISO87, FieldSpec, FieldTable, LengthCount, Sensitivity
from protocol.headers import Encoding, MessageHeader, TpduSpec, length_header
from protocol.specs import WireProfile
from protocol.transactions import FieldMatch, TxnRoute, TxnType

BCD, ASCII = Encoding.BCD, Encoding.ASCII

CUP_TPDU = TpduSpec(default=bytes.fromhex("6000020000"))
"""ID ``60``, destination ``0002``, source ``0000``."""

CUP_HEADER = MessageHeader(6, BCD, "603100000000")
"""Application class ``60`` (magnetic stripe), version ``31``, status ``0``, request ``0``."""


def _cup_encoding(spec: FieldSpec) -> FieldSpec:
    """One ISO 8583:1987 row as CUP encodes it (see the module docstring)."""
    if spec.number in (1, 65):
        return spec
    if spec.fmt in ("n", "z"):
        return dataclasses.replace(spec, data_enc=BCD, len_enc=BCD,
                                   len_count=LengthCount.NIBBLES,
                                   left_pad="0" if spec.fixed else "",
                                   right_pad="" if spec.fixed else "F")
    return dataclasses.replace(spec, len_enc=BCD)


def _digits(number: int, len_type: int, max_len: int, name: str) -> FieldSpec:
    return FieldSpec(number, "n", len_type, max_len, name, data_enc=BCD, len_enc=BCD,
                     len_count=LengthCount.NIBBLES, right_pad="F")


_PRIVATE: dict[int, FieldSpec] = {
    # 0500 totals (62 digits) and 0320 upload records (2 + 40 per record) are all digits.
    48: FieldSpec(48, "n", 3, 322, "Additional data - private (totals, upload records)",
                  Sensitivity.PAN, data_enc=BCD, len_enc=BCD, len_count=LengthCount.NIBBLES,
                  right_pad="F"),
    # One 20-character amount block (account type, amount type, currency, C/D, amount): the
    # CUP answers' balance field, which carries the remaining refundable amount (type 90).
    54: FieldSpec(54, "ans", 3, 20, "Balance amount (remaining refundable amount)",
                  len_enc=BCD),
    60: _digits(60, 3, 17, "Reserved private (60.1 type, 60.2 batch, 60.3 network code, ...)"),
    61: _digits(61, 3, 29, "Original message (61.1 batch, 61.2 trace, 61.3 date MMDD)"),
    62: FieldSpec(62, "b", 3, 512, "Reserved private (sign-on working keys)", Sensitivity.SECRET,
                  len_enc=BCD),
    63: FieldSpec(63, "ans", 3, 163, "Reserved private (operator, card scheme)", len_enc=BCD),
}

CUP_TABLE = FieldTable(
    "cup",
    tuple(_PRIVATE.get(f.number) or _cup_encoding(f) for f in ISO87),
    mti_enc=BCD,
)
"""The CUP field table: BCD numerics and MTI, ASCII text, binary bitmap and ``b`` fields."""

# Mandatory request fields, by transaction (card data DE2/DE35 is checked through
# ``card_required``; DE64 is the security layer's business).
_SALE = frozenset({"3", "4", "11", "22", "25", "41", "42", "49", "60"})
_ORIGINAL = _SALE | {"37", "61"}
#: A completion (request or advice) and a pre-authorization cancel quote the
#: pre-authorization's approval code (DE38) and name it in DE61.
_NAMES_PREAUTH = _SALE | {"38", "61"}
_REFUND = frozenset({"3", "4", "22", "25", "37", "41", "42", "49", "60", "61"})
_REVERSAL = frozenset({"3", "4", "11", "22", "25", "39", "41", "42", "49", "60"})
_SIGN_ON = frozenset({"11", "41", "42", "60", "63"})
_SIGN_OFF = frozenset({"11", "41", "42", "60"})
_SETTLEMENT = frozenset({"11", "41", "42", "48", "49", "60", "63"})
_UPLOAD = frozenset({"11", "41", "42", "48", "60"})

T, M = TxnType, FieldMatch
_FINANCIAL_POS = M("25", "00")
_PREAUTH_POS = M("25", "06")
CUP_ROUTES: tuple[TxnRoute, ...] = (
    TxnRoute(T.AUTHORIZATION, "0100", "030000", match=(_PREAUTH_POS, M("60", "10")),
             request_fields=_SALE, card_required=True),
    TxnRoute(T.SALE, "0200", "000000", match=(_FINANCIAL_POS, M("60", "22")),
             request_fields=_SALE, card_required=True),
    TxnRoute(T.VOID, "0200", "200000", match=(_FINANCIAL_POS, M("60", "23")),
             request_fields=_ORIGINAL, card_required=True),
    TxnRoute(T.AUTH_CANCEL, "0100", "200000", match=(_PREAUTH_POS, M("60", "11")),
             request_fields=_NAMES_PREAUTH, card_required=True),
    # The completion advice (offline completion) is listed before the completion request, so
    # ``route(COMPLETION)`` is the request.
    TxnRoute(T.COMPLETION, "0220", "000000", match=(_PREAUTH_POS, M("60", "24")),
             request_fields=_NAMES_PREAUTH, card_required=True),
    TxnRoute(T.COMPLETION, "0200", "000000", match=(_PREAUTH_POS, M("60", "20")),
             request_fields=_NAMES_PREAUTH, card_required=True),
    TxnRoute(T.VOID_COMPLETION, "0200", "200000", match=(_PREAUTH_POS, M("60", "21")),
             request_fields=_ORIGINAL, card_required=True),
    TxnRoute(T.REFUND, "0220", "200000", match=(_FINANCIAL_POS, M("60", "25")),
             request_fields=_REFUND, card_required=True),
    # A reversal carries the original's DE3/DE25/DE60.1; the host finds the original by its
    # stored record (batch from 60.2, trace from DE11), not by 60.1.
    TxnRoute(T.REVERSAL, "0400", None, keyed=False, request_fields=_REVERSAL),
    TxnRoute(T.SIGN_ON, "0800", None, keyed=False, match=(M("60", "001", offset=8),),
             request_fields=_SIGN_ON),
    TxnRoute(T.SIGN_ON, "0800", None, keyed=False, match=(M("60", "003", offset=8),),
             request_fields=_SIGN_ON),
    # Listed last, so ``route(SIGN_ON)`` is the triple-key sign-on (PIN, MAC and data key).
    TxnRoute(T.SIGN_ON, "0800", None, keyed=False, match=(M("60", "004", offset=8),),
             request_fields=_SIGN_ON),
    TxnRoute(T.SIGN_OFF, "0820", None, keyed=False, match=(M("60", "002", offset=8),),
             request_fields=_SIGN_OFF),
    TxnRoute(T.SETTLEMENT, "0500", None, keyed=False, match=(M("60", "201", offset=8),),
             request_fields=_SETTLEMENT),
    TxnRoute(T.BATCH_UPLOAD, "0320", None, keyed=False, match=(M("60", "20", offset=8),),
             request_fields=_UPLOAD),
)
"""How the CUP POS profile spells each logical transaction it carries."""
del T, M

CUP_MAC_SCHEME = "cup-ecb"
"""The CUP POS MAC (see :mod:`protocol.security.mac`)."""

CUP_MAC_MTIS: frozenset[str] = frozenset({"0100", "0110", "0200", "0210", "0220", "0230",
                                          "0400", "0410"})
"""Messages that carry a DE64 MAC: financial requests and responses, not 0330/0510/0810/0830."""

CUP_PROFILE = WireProfile(
    "cup", CUP_TABLE, length_header("2b"),
    "China UnionPay POS: BCD numerics, 2-byte length, TPDU and 6-byte BCD header",
    tpdu=CUP_TPDU, message_header=CUP_HEADER, routes=CUP_ROUTES,
    mac_field=64, mac_scheme=CUP_MAC_SCHEME, mac_mtis=CUP_MAC_MTIS, security_control="cup",
    reader=parse_cup_request, writer=cup_response_fields,
)
"""The CUP POS wire profile."""
