"""The ``iso87-ascii-tpdu`` profile: a 5-byte TPDU between length header and MTI (item 7)."""

from __future__ import annotations

import pytest
from protocol_samples import samples
from test_protocol_golden import GOLDEN

from protocol import PROFILES, Codec, DecodeError, Tpdu, get_profile

TPDU = Tpdu(bytes.fromhex("6000120034"))  # ID 60, destination 0012, source 0034


def test_encode_prefixes_the_tpdu_before_the_mti() -> None:
    """The TPDU profile's body is the TPDU followed by the plain iso87-ascii body."""
    codec = Codec("iso87-ascii-tpdu")
    body = codec.encode(samples()["echo_0800"].to_fields(), tpdu=TPDU)
    assert body.hex().upper() == "6000120034" + GOLDEN["echo_0800"]


def test_decode_splits_the_tpdu_from_the_message() -> None:
    """Decoding returns the TPDU and the same fields the plain profile would."""
    codec = Codec("iso87-ascii-tpdu")
    tpdu, fields = codec.decode(bytes.fromhex("6000120034" + GOLDEN["sale_0200"]))
    assert tpdu == TPDU and str(tpdu) == "6000120034"
    assert fields == Codec().decode(bytes.fromhex(GOLDEN["sale_0200"]))[1]


def test_reply_swaps_source_and_destination() -> None:
    """A response TPDU keeps the ID and swaps the two 2-byte addresses; twice is identity."""
    assert TPDU.reply == Tpdu(bytes.fromhex("6000340012"))
    assert TPDU.reply.reply == TPDU


def test_default_tpdu_and_plain_profile() -> None:
    """Without a TPDU argument the profile sends 6000000000; plain profiles decode to None."""
    fields = samples()["sign_on_0800"].to_fields()
    assert Codec("iso87-ascii-tpdu").encode(fields)[:5] == bytes.fromhex("6000000000")
    assert Codec("iso87-ascii").decode(bytes.fromhex(GOLDEN["sign_on_0800"]))[0] is None


@pytest.mark.parametrize("size", range(5))
def test_frame_shorter_than_the_tpdu_is_a_decode_error(size: int) -> None:
    """Fewer than 5 bytes cannot hold a TPDU: DecodeError on field tpdu."""
    with pytest.raises(DecodeError) as info:
        Codec("iso87-ascii-tpdu").decode(b"\x60" * size)
    assert info.value.field == "tpdu"


def test_profiles_are_data_selectable_by_name() -> None:
    """Every profile is reachable by name, CUP too; an unknown name lists the valid ones."""
    assert get_profile("iso87-ascii-tpdu").tpdu
    assert get_profile("iso87-ascii-4a").length_header == "4a"
    assert get_profile("cup").message_header is not None
    assert {p.name for p in PROFILES.values()} == set(PROFILES)
    with pytest.raises(ValueError, match="cup, iso87-ascii, iso87-ascii-4a, iso87-ascii-tpdu"):
        get_profile("cups")
