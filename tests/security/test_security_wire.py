"""The on-the-wire security layout: MAC span and sealing over encoded messages, DE53 digits."""

from __future__ import annotations

import pytest

from protocol import Codec
from protocol.security import Key, KeyAlgorithm, KeyFormatError, PinBlockFormat, get_mac_scheme
from protocol.security.wire import (
    CUP_CONTROL_TEXT,
    MAC_PLACEHOLDER,
    ControlLayout,
    KeyManagement,
    SecurityControl,
    key_block_bytes,
    key_block_text,
    mac_matches,
    mac_scheme_for,
    mac_span,
    seal,
    working_key_algorithm,
)

pytestmark = pytest.mark.filterwarnings("error")

MAK = Key.from_hex("0123456789ABCDEFFEDCBA9876543210", KeyAlgorithm.TDES_2KEY)
X919 = get_mac_scheme("x9.19")
SALE = {"t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000001000",
        "11": "000123", "41": "TERM0001", "42": "MERCHANT0000001", "49": "840",
        "64": MAC_PLACEHOLDER}


def sealed_sale() -> bytes:
    """A generic-profile sale encoded with a placeholder MAC, then sealed under ``MAK``."""
    return seal(Codec("iso87-ascii").encode(SALE), X919, MAK)


def test_sealed_message_decodes_with_the_mac_in_de64() -> None:
    """Sealing replaces the placeholder: the decoded DE64 is the X9.19 MAC of the span."""
    message = sealed_sale()
    _, fields = Codec("iso87-ascii").decode(message)
    assert fields["64"] == X919.compute(MAK, mac_span(message)).hex().upper()
    assert fields["64"] != MAC_PLACEHOLDER


def test_mac_matches_the_bytes_as_sent_and_catches_one_changed_byte() -> None:
    """A sealed message verifies; any single flipped byte before the MAC makes it fail."""
    message = sealed_sale()
    assert mac_matches(message, X919, MAK)
    for i in range(len(message) - 8):
        tampered = message[:i] + bytes([message[i] ^ 0x01]) + message[i + 1:]
        assert not mac_matches(tampered, X919, MAK), i


def test_a_replaced_key_fails() -> None:
    """A message MAC'd under one MAC key does not verify under another."""
    other = Key.generate(KeyAlgorithm.TDES_2KEY)
    assert not mac_matches(sealed_sale(), X919, other)


def test_mac_span_refuses_a_message_too_short() -> None:
    """A message no longer than a MAC field has no span."""
    with pytest.raises(ValueError, match="too short"):
        mac_span(b"12345678")


def test_key_block_round_trips_as_hex_and_names_bad_text() -> None:
    """Wrapped keys travel as upper-case hex; non-hex text is a key-format error."""
    assert key_block_bytes(key_block_text(b"\x01\xab")) == b"\x01\xab"
    assert key_block_text(b"\x01\xab") == "01AB"
    with pytest.raises(KeyFormatError):
        key_block_bytes("XYZ")


@pytest.mark.parametrize(
    ("control", "text"),
    [
        (SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.TDES_2KEY), "0200000000000000"),
        (SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.TDES_2KEY, KeyManagement.TDES_DUKPT),
         "0210000000000000"),
        (SecurityControl(PinBlockFormat.ISO_4, KeyAlgorithm.AES_128, KeyManagement.AES_DUKPT),
         "4820000000000000"),
    ],
)
def test_security_control_digits_round_trip(control: SecurityControl, text: str) -> None:
    """DE53 is format, algorithm and key management in digits 1-3, then zeros."""
    assert control.text() == text
    assert SecurityControl.parse(text) == control


def test_cup_security_control_is_format_0_under_double_length_tdes() -> None:
    """The CUP layout writes format 0 under a double-length TDES sign-on key as 53.1 ``2``
    (X9.8 with the PAN), 53.2 ``6``, 53.3 ``0``, and reads it back; it has no spelling for an
    AES or DUKPT PIN key."""
    control = SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.TDES_2KEY)
    assert control.text(ControlLayout.CUP) == CUP_CONTROL_TEXT == "26" + "0" * 14
    assert SecurityControl.parse(CUP_CONTROL_TEXT, ControlLayout.CUP) == control
    for other in (SecurityControl(PinBlockFormat.ISO_4, KeyAlgorithm.AES_128),
                  SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.TDES_2KEY,
                                  KeyManagement.TDES_DUKPT)):
        with pytest.raises(KeyFormatError, match="the CUP DE53 cannot announce"):
            other.text(ControlLayout.CUP)


def test_cup_security_control_under_single_length_des() -> None:
    """Format 0 under a single-length DES sign-on key is 53.2 ``0`` in the CUP layout and
    reads back; the poslab layout has no digit for it."""
    control = SecurityControl(PinBlockFormat.ISO_0, KeyAlgorithm.DES)
    assert control.text(ControlLayout.CUP) == "20" + "0" * 14
    assert SecurityControl.parse("20" + "0" * 14, ControlLayout.CUP) == control
    with pytest.raises(KeyFormatError, match="no digit for DES keys"):
        control.text()


@pytest.mark.parametrize(
    ("text", "where"),
    [("1" + "6" + "0" * 14, "53.1: PIN block without the PAN"),
     ("261" + "0" * 13, "53.3: encrypted track data"), ("2700000000000000", "53.2: unknown"),
     ("0200000000000000", "53.1: unknown")],
)
def test_cup_security_control_names_what_it_cannot_honour(text: str, where: str) -> None:
    """A CUP DE53 poslab cannot honour is a key-format error naming the subfield and why."""
    with pytest.raises(KeyFormatError, match=where):
        SecurityControl.parse(text, ControlLayout.CUP)


@pytest.mark.parametrize(
    ("text", "where"),
    [("02", "16 digits"), ("9200000000000000", "digit 1"), ("0900000000000000", "digit 2"),
     ("0290000000000000", "digit 3")],
)
def test_security_control_names_the_bad_digit(text: str, where: str) -> None:
    """A DE53 poslab cannot read raises a key-format error naming the position."""
    with pytest.raises(KeyFormatError, match=where):
        SecurityControl.parse(text)


@pytest.mark.parametrize(
    ("tmk", "working", "scheme"),
    [(KeyAlgorithm.TDES_2KEY, KeyAlgorithm.TDES_2KEY, "x9.19"),
     (KeyAlgorithm.TDES_3KEY, KeyAlgorithm.TDES_2KEY, "x9.19"),
     (KeyAlgorithm.AES_128, KeyAlgorithm.AES_128, "aes-cmac")],
)
def test_working_keys_and_mac_scheme_per_tmk_kind(tmk: KeyAlgorithm, working: KeyAlgorithm,
                                                  scheme: str) -> None:
    """Every TDES TMK gets double-length working keys (X9.19 needs them), an AES TMK AES-128
    ones; the profile's scheme MACs under TDES keys, AES-CMAC under AES keys."""
    assert working_key_algorithm(tmk) is working
    key = Key.generate(working)
    chosen = mac_scheme_for("x9.19", key)
    assert chosen.name == scheme
    assert len(chosen.compute(key, b"0200 some message")) == 8


def test_single_length_working_keys_need_a_tdes_tmk() -> None:
    """A 60.3 001 sign-on gets single DES working keys under a TDES TMK; an AES TMK cannot
    carry them (a key-format error naming the TMK kind)."""
    assert working_key_algorithm(KeyAlgorithm.TDES_2KEY, single_length=True) is KeyAlgorithm.DES
    assert working_key_algorithm(KeyAlgorithm.TDES_2KEY) is KeyAlgorithm.TDES_2KEY
    with pytest.raises(KeyFormatError, match="under a AES-128 TMK"):
        working_key_algorithm(KeyAlgorithm.AES_128, single_length=True)
