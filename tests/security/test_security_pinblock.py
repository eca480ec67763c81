"""ISO 9564 PIN blocks: formats 0 and 4, malformed blocks, verification, no rendering."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psec import des as psec_des
from psec import pinblock as psec_pinblock
from security_oracle import psec_call

from protocol.masking import luhn_ok
from protocol.security import (
    Key,
    KeyAlgorithm,
    PinBlock,
    PinBlockError,
    PinBlockFormat,
    decipher_pin,
    encipher_pin,
    verify_pin,
)
from protocol.security.ciphers import tdes_encrypt
from protocol.security.pinblock import (
    format0_decode,
    format0_encode,
    format4_pan_field,
    format4_pin_field,
)

pytestmark = pytest.mark.filterwarnings("error")

PIK_HEX = "0123456789ABCDEFFEDCBA9876543210"
AES_PIK_HEX = "00112233445566778899AABBCCDDEEFF"
PAN = "4761739001010010"


def tdes_pik() -> Key:
    """The TDES PIN key used by these tests."""
    return Key.from_hex(PIK_HEX, KeyAlgorithm.TDES_2KEY)


def aes_pik() -> Key:
    """The AES PIN key of psec's format 4 example."""
    return Key.from_hex(AES_PIK_HEX, KeyAlgorithm.AES_128)


def test_format0_reproduces_the_iso9564_example() -> None:
    """PIN 1234 with PAN 43219876543210987 gives the textbook clear block 0412AC89ABCDEF67."""
    block = format0_encode("1234", "43219876543210987")
    assert block.hex().upper() == "0412AC89ABCDEF67"
    assert block == psec_pinblock.encode_pinblock_iso_0("1234", "43219876543210987")
    assert format0_decode(block, "43219876543210987") == "1234"


def test_format0_enciphered_matches_psec_and_deciphers() -> None:
    """The enciphered format 0 block is psec's clear block under TDES-ECB, and reads back."""
    clear = psec_pinblock.encode_pinblock_iso_0("987654", PAN)
    expected = psec_call(psec_des.encrypt_tdes_ecb, bytes.fromhex(PIK_HEX), clear)
    block = encipher_pin(tdes_pik(), "987654", PAN)
    assert block.format is PinBlockFormat.ISO_0
    assert block.get_secret_value() == expected
    assert decipher_pin(tdes_pik(), block, PAN) == "987654"


def test_format4_deciphers_psecs_published_example() -> None:
    """psec's documented format 4 block E4BE…4564 (PAN 1234567890123456) deciphers to 1234."""
    block = PinBlock(bytes.fromhex("E4BE5B623AF7E006AC319E5B93544564"), PinBlockFormat.ISO_4)
    assert decipher_pin(aes_pik(), block, "1234567890123456") == "1234"


def test_format4_fields_and_encipherment_match_psec() -> None:
    """Format 4 fields equal psec's, and each side deciphers the other's blocks."""
    assert format4_pan_field(PAN) == psec_pinblock.encode_pan_field_iso_4(PAN)
    assert format4_pan_field("12345678901") == psec_pinblock.encode_pan_field_iso_4("12345678901")
    field = format4_pin_field("1234", bytes.fromhex("548ED7FD65495950"))
    assert field.hex().upper() == "441234AAAAAAAAAA548ED7FD65495950"
    ours = encipher_pin(aes_pik(), "123456789", PAN)
    assert ours.format is PinBlockFormat.ISO_4
    key = bytes.fromhex(AES_PIK_HEX)
    assert psec_pinblock.decipher_pinblock_iso_4(key, ours.get_secret_value(), PAN) == "123456789"
    theirs = psec_pinblock.encipher_pinblock_iso_4(key, "4321", PAN)
    assert decipher_pin(aes_pik(), PinBlock(theirs, PinBlockFormat.ISO_4), PAN) == "4321"


def test_format4_random_fill_makes_each_block_different() -> None:
    """Two format 4 blocks of the same PIN and PAN differ (8 random bytes in the PIN field)."""
    first = encipher_pin(aes_pik(), "1234", PAN).get_secret_value()
    assert first != encipher_pin(aes_pik(), "1234", PAN).get_secret_value()
    fixed = encipher_pin(aes_pik(), "1234", PAN, random_bytes=lambda n: bytes(n))
    assert (
        fixed.get_secret_value()
        == encipher_pin(aes_pik(), "1234", PAN, random_bytes=lambda n: bytes(n)).get_secret_value()
    )


def enciphered_clear_block(nibbles: str) -> PinBlock:
    """A format 0 block whose clear form XOR the PAN field is ``nibbles``."""
    pan_field = bytes.fromhex(PAN[:-1][-12:].rjust(16, "0"))
    clear = bytes(a ^ b for a, b in zip(bytes.fromhex(nibbles), pan_field, strict=True))
    return PinBlock(tdes_encrypt(bytes.fromhex(PIK_HEX), clear), PinBlockFormat.ISO_0)


@pytest.mark.parametrize(
    ("nibbles", "message"),
    [
        ("141234FFFFFFFFFF", "control nibble is not 0"),
        ("031234FFFFFFFFFF", "PIN length of 3"),
        ("0D1234FFFFFFFFFF", "PIN length of 13"),
        ("04123AFFFFFFFFFF", "non-decimal PIN digit"),
        ("041234FFFFFFFFFE", "fill is not all F"),
    ],
)
def test_malformed_format0_blocks_raise_pin_block_error(nibbles: str, message: str) -> None:
    """Each way a deciphered block can be malformed raises PinBlockError, quoting no digits."""
    with pytest.raises(PinBlockError, match=message) as caught:
        verify_pin(tdes_pik(), enciphered_clear_block(nibbles), PAN, "1234")
    assert "1234" not in str(caught.value)


def test_wrong_lengths_and_formats_raise_pin_block_error() -> None:
    """A block of the wrong size, or of a format the key cannot read, is a PIN format error."""
    with pytest.raises(PinBlockError, match="has 8 bytes, not 7"):
        PinBlock(bytes(7), PinBlockFormat.ISO_0)
    aes_block = encipher_pin(aes_pik(), "1234", PAN)
    with pytest.raises(PinBlockError, match="cannot be read with a TDES-2 PIN key"):
        decipher_pin(tdes_pik(), aes_block, PAN)
    with pytest.raises(PinBlockError):
        decipher_pin(aes_pik(), PinBlock(bytes(16), PinBlockFormat.ISO_4), PAN)


def test_verify_pin_compares_with_the_catalogue_pin() -> None:
    """The right PIN verifies; a wrong one, a prefix or a longer one does not."""
    block = encipher_pin(tdes_pik(), "1234", PAN)
    assert verify_pin(tdes_pik(), block, PAN, "1234")
    for other in ("1235", "12345", "4321", "123412341234"):
        assert not verify_pin(tdes_pik(), block, PAN, other)


def test_pin_block_never_renders_and_refuses_pickling() -> None:
    """repr/str of a PIN block show the format only; pickling it raises."""
    block = encipher_pin(tdes_pik(), "1234", PAN)
    hex_text = block.get_secret_value().hex()
    for text in (repr(block), str(block), f"{block}", repr([block])):
        assert hex_text not in text.lower() and "1234" not in text
    assert repr(block) == "PinBlock(ISO-0)"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(block)


def luhn_pans() -> st.SearchStrategy[str]:
    """Valid PANs: 12 to 19 digits with a correct Luhn check digit."""
    body = st.text("0123456789", min_size=11, max_size=18)
    return body.map(lambda b: next(b + d for d in "0123456789" if luhn_ok(b + d)))


@given(pin=st.text("0123456789", min_size=4, max_size=12), pan=luhn_pans())
def test_pin_block_round_trip_any_pin_and_pan(pin: str, pan: str) -> None:
    """Any 4-12 digit PIN with any valid PAN survives build/parse in formats 0 and 4."""
    assert format0_decode(format0_encode(pin, pan), pan) == pin
    for key in (tdes_pik(), aes_pik()):
        block = encipher_pin(key, pin, pan)
        assert decipher_pin(key, block, pan) == pin
        assert verify_pin(key, block, pan, pin)


def test_format0_under_a_single_des_pin_key() -> None:
    """Under a single DES PIN key the format 0 block is DES of the clear block (psec's TDES
    with the key as both halves agrees) and verifies; another key's block does not."""
    pik = Key.from_hex("0123456789ABCDEF", KeyAlgorithm.DES)
    block = encipher_pin(pik, "1234", PAN)
    assert block.format is PinBlockFormat.ISO_0
    expected = psec_call(psec_des.encrypt_tdes_ecb, bytes.fromhex("0123456789ABCDEF" * 2),
                         format0_encode("1234", PAN))
    assert block.get_secret_value() == expected
    assert verify_pin(pik, block, PAN, "1234")
    with pytest.raises(PinBlockError):
        decipher_pin(Key.from_hex("FEDCBA9876543210", KeyAlgorithm.DES), block, PAN)
