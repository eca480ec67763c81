"""Wire profiles as data: a BCD profile with a TPDU and a 6-byte header, transaction spelling.

``bcd-test`` exists only here. It is laid out the way China UnionPay terminals talk: BCD MTI,
binary bitmap, numeric fields in BCD with lengths counted in digits and BCD LL/LLL prefixes,
an/ans fields in ASCII, binary ``b`` fields, a TPDU and a 6-byte BCD header, and refunds spelled
0220 / 200000 told apart from voids by DE60. It proves that a profile is data: nothing outside
this file knows it.
"""

from __future__ import annotations

import dataclasses

import iso8583
import pytest
from protocol_samples import samples
from test_protocol_golden import GOLDEN

from protocol import Codec, Direction, EncodeError, TxnType, ValidationError, frame, get_profile
from protocol.fields import ISO87, FieldSpec, FieldTable, LengthCount
from protocol.headers import Encoding, MessageHeader, TpduSpec, length_header
from protocol.specs import (
    GENERIC_MAC_MTIS,
    GENERIC_ROUTES,
    PROFILES,
    FieldMatch,
    TxnRoute,
    WireProfile,
    compile_spec,
)
from protocol.validate import validate_fields

BCD, ASCII = Encoding.BCD, Encoding.ASCII


def _cup_style(spec: FieldSpec) -> FieldSpec:
    """One ISO 8583:1987 row re-encoded: digits in BCD, text in ASCII, lengths in BCD."""
    if spec.number in (1, 65):
        return spec
    if spec.fmt in ("n", "z"):
        pad = {"left_pad": "0"} if spec.fixed else {"right_pad": "F"}
        return dataclasses.replace(spec, data_enc=BCD, len_enc=BCD,
                                   len_count=LengthCount.NIBBLES, **pad)
    return dataclasses.replace(spec, len_enc=BCD)


# DE60 holds "60.1 transaction type + 60.2 batch" digits in CUP: n..13, BCD.
_DE60 = FieldSpec(60, "n", 3, 13, "Reserved private (60.1 type, 60.2 batch)", data_enc=BCD,
                  len_enc=BCD, len_count=LengthCount.NIBBLES, right_pad="F")
BCD_TABLE = FieldTable(
    "bcd-test",
    tuple(_DE60 if f.number == 60 else _cup_style(f) for f in ISO87),
    mti_enc=BCD,
)
T, M = TxnType, FieldMatch
BCD_ROUTES = (
    TxnRoute(T.SALE, "0200", "000000", match=(M("60", "22"),), request_fields=frozenset({"3", "4"}),
             card_required=True),
    TxnRoute(T.VOID, "0200", "200000", match=(M("60", "23"),), request_fields=frozenset({"37"})),
    TxnRoute(T.REFUND, "0220", "200000", match=(M("60", "25"),),
             request_fields=frozenset({"3", "4", "37", "60"}),
             response_fields=frozenset({"37", "39"}), card_required=True),
    TxnRoute(T.COMPLETION, "0220", "000000", match=(M("60", "24"),)),
    TxnRoute(T.SIGN_ON, "0800", None, keyed=False, match=(M("60", "004", offset=8),)),
    TxnRoute(T.SIGN_OFF, "0820", None, keyed=False, match=(M("60", "002", offset=8),)),
)
BCD_PROFILE = WireProfile(
    "bcd-test", BCD_TABLE, length_header("2b"),
    "test only: BCD numerics, TPDU and 6-byte BCD header",
    tpdu=TpduSpec(default=bytes.fromhex("6000020000")),
    message_header=MessageHeader(6, BCD, "603100310000"),
    routes=BCD_ROUTES, mac_field=64,
)  # fmt: skip
CODEC = Codec(BCD_PROFILE)


def _bcd_ready(fields: dict[str, str]) -> dict[str, str]:
    """A generic sample made CUP-shaped: the track-2 separator is the BCD digit D."""
    out = dict(fields)
    if "35" in out:
        out["35"] = out["35"].replace("=", "D")
    return out


@pytest.mark.parametrize("name", sorted(samples()))
def test_every_sample_round_trips_through_the_bcd_profile(name: str) -> None:
    """Encode -> decode -> validate gives back the same fields, plus the header, under BCD."""
    fields = _bcd_ready(samples()[name].to_fields())
    wire = CODEC.encode(fields)
    tpdu, decoded = CODEC.decode(wire)
    assert str(tpdu) == "6000020000"
    assert decoded == {**fields, "h": "603100310000"}
    validate_fields(decoded, BCD_TABLE)
    # Past the TPDU and header, BCD numerics make the body shorter than the ASCII one.
    assert len(wire) - 11 < len(Codec("iso87-ascii").encode(samples()[name].to_fields()))


def test_bcd_echo_golden_bytes() -> None:
    """An 0800 echo under bcd-test, written out byte by byte and checked by hand."""
    fields = samples()["echo_0800"].to_fields()
    assert fields == {"t": "0800", "7": "0315103000", "11": "000003", "41": "TERM0001",
                      "42": "MERCHANT0000001", "70": "301"}
    expected = (
        "6000020000"  # TPDU: ID 60, destination 0002, source 0000
        "603100310000"  # message header, 6 bytes BCD
        "0800"  # MTI, 2 bytes BCD
        "8220000000C00000"  # primary bitmap: 1 (secondary follows) 7 11 41 42
        "0400000000000000"  # secondary bitmap: 70
        "0315103000"  # DE7 n10 BCD, 5 bytes
        "000003"  # DE11 n6 BCD, 3 bytes
        "5445524D30303031"  # DE41 ans8 ASCII: TERM0001
        "4D45524348414E5430303030303031"  # DE42 ans15 ASCII: MERCHANT0000001
        "0301"  # DE70 n3 BCD, left-padded with 0
    )
    assert CODEC.encode(fields).hex().upper() == expected
    assert frame(CODEC.encode(fields))[:2] == (len(expected) // 2).to_bytes(2, "big")


def test_bcd_variable_fields_count_digits_with_bcd_prefixes() -> None:
    """DE2 (19 digits max) carries a BCD LL of digits and an F pad; DE48 a BCD LLL of bytes."""
    fields = {"t": "0200", "2": "476173900101011", "3": "000000", "48": "RS006return"}
    spec = compile_spec(BCD_TABLE)
    _, enc = iso8583.encode(dict(fields), spec)
    assert enc["2"]["len"].hex() == "15" and enc["2"]["data"].hex().upper() == "476173900101011F"
    assert enc["48"]["len"].hex() == "0011" and enc["48"]["data"] == b"RS006return"
    assert CODEC.decode_body(CODEC.encode(fields)[5:])["2"] == "476173900101011"


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("35", "4761739001010119=2812101", "hex digits"),  # '=' has no BCD nibble
    ("3", "00000", "exactly 6 long, got 5"),  # fixed BCD: length in digits
    ("2", "4" * 20, "at most 19 long, got 20"),  # LLVAR BCD: length in digits
    ("52", "0412AC89ABCDEF6", "odd number of hex digits"),  # binary: length in bytes
    ("4", "00000001255A", "digits only"),  # BCD accepts any nibble; numeric fields do not
])  # fmt: skip
def test_validation_checks_the_declared_encoding(key: str, value: str, reason: str) -> None:
    """Each field is checked as its row encodes it: BCD digits, binary bytes, ASCII text."""
    fields = {"t": "0200", key: value}
    with pytest.raises(ValidationError, match=reason) as info:
        validate_fields(fields, BCD_TABLE)
    assert info.value.field == key
    with pytest.raises(EncodeError):
        CODEC.encode(fields)


def test_track2_separator_is_encoding_specific() -> None:
    """'=' is a valid track-2 separator in ASCII but not in BCD, where it is the digit D."""
    ascii_track, bcd_track = "4761739001010119=2812", "4761739001010119D2812"
    validate_fields({"t": "0200", "35": ascii_track}, "iso87")
    validate_fields({"t": "0200", "35": bcd_track}, BCD_TABLE)
    with pytest.raises(ValidationError):
        validate_fields({"t": "0200", "35": ascii_track}, BCD_TABLE)


def test_message_header_is_kept_on_decode_and_sent_as_given() -> None:
    """A request's header comes back in "h"; a reply that carries it sends it unchanged."""
    fields = {**samples()["echo_0800"].to_fields(), "h": "613100315046"}
    _, decoded = CODEC.decode(CODEC.encode(fields))
    assert decoded["h"] == "613100315046"
    assert CODEC.encode(fields)[5:11].hex() == "613100315046"


def test_bcd_profile_spells_refund_as_0220() -> None:
    """identify() and message_for() read the profile: refund is 0220/200000, void 0200/200000."""
    assert BCD_PROFILE.message_for(TxnType.REFUND) == ("0220", "200000")
    assert BCD_PROFILE.message_for(TxnType.VOID) == ("0200", "200000")
    assert BCD_PROFILE.identify("0220", "200000", {"60": "25000001"}) is TxnType.REFUND
    assert BCD_PROFILE.identify("0220", "000000", {"60": "24000001"}) is TxnType.COMPLETION
    assert BCD_PROFILE.identify("0200", "200000", {"60": "23000001"}) is TxnType.VOID
    assert BCD_PROFILE.identify("0200", "200000", {"60": "25000001"}) is None
    # Network management is keyed on DE60.3, eight digits into DE60.
    assert BCD_PROFILE.identify("0800", None, {"60": "00000001004"}) is TxnType.SIGN_ON
    assert BCD_PROFILE.identify("0820", None, {"60": "00000001002"}) is TxnType.SIGN_OFF
    assert BCD_PROFILE.identify("0800", None, {"60": "00000001002"}) is None
    assert BCD_PROFILE.mandatory(TxnType.REFUND, Direction.RESPONSE) == {"37", "39"}
    with pytest.raises(ValueError, match="bcd-test.*settlement"):
        BCD_PROFILE.message_for(TxnType.SETTLEMENT)


GENERIC = get_profile("iso87-ascii")


@pytest.mark.parametrize("route", GENERIC_ROUTES, ids=lambda r: r.txn.value)
def test_generic_message_for_identifies_back(route: TxnRoute) -> None:
    """Every logical transaction's (MTI, DE3) and identifying fields identify it again."""
    mti, code = GENERIC.message_for(route.txn)
    fields = {m.key: m.value for m in route.match}
    assert GENERIC.identify(mti, code or "000000", fields) is route.txn
    if route.repeat_mti:
        assert GENERIC.identify(route.repeat_mti, code, fields) is route.txn


def test_generic_identify_matches_the_typed_messages() -> None:
    """Each sample request identifies as the transaction its class stands for."""
    expected = {
        "auth_0100": TxnType.AUTHORIZATION, "sale_0200": TxnType.SALE,
        "refund_0200": TxnType.REFUND, "void_sale_0200": TxnType.VOID,
        "void_refund_0200": TxnType.VOID_REFUND, "completion_0220": TxnType.COMPLETION,
        "reversal_0400": TxnType.REVERSAL, "reversal_0401_de90": TxnType.REVERSAL,
        "recon_920000": TxnType.SETTLEMENT, "recon_960000": TxnType.SETTLEMENT_AFTER_UPLOAD,
        "batch_upload_0320": TxnType.BATCH_UPLOAD, "sign_on_0800": TxnType.SIGN_ON,
        "sign_off_0800": TxnType.SIGN_OFF, "echo_0800": TxnType.ECHO,
    }  # fmt: skip
    for name, txn in expected.items():
        fields = samples()[name].to_fields()
        assert GENERIC.identify(fields["t"], fields.get("3"), fields) is txn, name
    assert GENERIC.identify("0200", "990000") is None
    assert GENERIC.identify("0210", "000000") is None


def test_strict_mandatory_fields_per_transaction() -> None:
    """Mandatory fields come from the routes; an 0800 without DE70 still needs DE70."""
    sale = samples()["sale_0200"].to_fields()
    assert GENERIC.missing_field(sale) is None
    assert GENERIC.missing_field({k: v for k, v in sale.items() if k != "35"}) == "2"
    void = {**samples()["void_sale_0200"].to_fields(), "12": "103000", "13": "0315"}
    assert GENERIC.missing_field(void) is None
    assert GENERIC.missing_field({k: v for k, v in void.items() if k != "37"}) == "37"
    echo = samples()["echo_0800"].to_fields()
    assert GENERIC.missing_field({k: v for k, v in echo.items() if k != "70"}) == "70"
    assert GENERIC.mandatory_fields("0200", "990000") == frozenset()
    assert GENERIC.mandatory(TxnType.VOID) == GENERIC.mandatory(TxnType.SALE) | {"37"}


def test_repeat_completion_is_checked_like_the_original() -> None:
    """A strict host requires the same fields in an 0221 as in the 0220 it repeats."""
    completion = samples()["completion_0220"].to_fields()
    repeat = {**completion, "t": "0221"}
    assert GENERIC.missing_field({k: v for k, v in repeat.items() if k != "12"}) == "12"


#: The generic built-in profiles (CUP, with private fields of its own, is tested apart).
GENERIC_PROFILES = {name: p for name, p in PROFILES.items() if p.reader is None}


def test_built_in_profiles_share_one_table_and_differ_in_framing() -> None:
    """The three generic built-in profiles: same table, transactions and MAC setting (X9.19 in
    DE64 on the financial messages and their answers), their own header and TPDU."""
    names = {p.name: (p.length_header.name, p.tpdu is not None)
             for p in GENERIC_PROFILES.values()}
    assert names == {"iso87-ascii": ("2b", False), "iso87-ascii-4a": ("4a", False),
                     "iso87-ascii-tpdu": ("2b", True)}
    assert {p.table.name for p in GENERIC_PROFILES.values()} == {"iso87"}
    assert {(p.mac_field, p.mac_scheme, p.mac_mtis) for p in GENERIC_PROFILES.values()} == {
        (64, "x9.19", GENERIC_MAC_MTIS)}
    assert {"0200", "0210", "0400", "0410"} <= GENERIC_MAC_MTIS
    assert not {"0800", "0810", "0500", "0320"} & GENERIC_MAC_MTIS


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_built_in_profiles_put_the_golden_body_on_the_wire(name: str) -> None:
    """Each built-in profile frames the hand-checked body exactly as before profiles were data."""
    body = bytes.fromhex(GOLDEN[name])
    fields = samples()[name].to_fields()
    wires = {p: frame(Codec(p).encode(fields), get_profile(p).length_header)
             for p in GENERIC_PROFILES}
    assert wires == {
        "iso87-ascii": len(body).to_bytes(2, "big") + body,
        "iso87-ascii-4a": b"%04d" % len(body) + body,
        "iso87-ascii-tpdu": (len(body) + 5).to_bytes(2, "big") + bytes.fromhex("6000000000") + body,
    }


def test_length_header_equals_its_name() -> None:
    """A header object compares equal to its old string name, so callers comparing names work."""
    assert get_profile("iso87-ascii-4a").length_header == "4a"
    assert length_header("2b") != "4a" and length_header("2b") == length_header("2b")
    with pytest.raises(ValueError, match="2bcd"):
        length_header("3x")


def test_message_header_default_must_fit() -> None:
    """A message header whose default is the wrong width is refused when the profile is built."""
    with pytest.raises(ValueError, match="12 characters"):
        MessageHeader(6, BCD, "6031")
    MessageHeader(2, ASCII, "AB")
