"""Key values: check values, hex parsing, generation, and that key bytes never render."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest
from psec import des as psec_des
from security_oracle import psec_call, reference_cmac

from protocol.security import Key, KeyAlgorithm, KeyCheckError, KeyFormatError
from protocol.security.keys import adjust_odd_parity, has_odd_parity

pytestmark = pytest.mark.filterwarnings("error")

# The ANSI test key: psec's documentation gives its 2-byte check value 08D7.
ANSI_HEX = "0123456789ABCDEFFEDCBA9876543210"
TDES3_HEX = "0123456789ABCDEFFEDCBA987654321089ABCDEF01234567"
# The RFC 4493 example key.
AES_HEX = "2B7E151628AED2A6ABF7158809CF4F3C"


def test_tdes_check_value_matches_psec_and_its_published_prefix() -> None:
    """A TDES KCV is E(key, 8 zero bytes): psec agrees and the ANSI key starts 08D7."""
    key = Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY)
    assert key.kcv(2).hex().upper() == "08D7"
    assert key.kcv() == psec_call(psec_des.generate_kcv, bytes.fromhex(ANSI_HEX), 3)
    key3 = Key.from_hex(TDES3_HEX, KeyAlgorithm.TDES_3KEY)
    assert key3.kcv(4) == psec_call(psec_des.generate_kcv, bytes.fromhex(TDES3_HEX), 4)


def test_aes_check_value_is_cmac_of_zero_block_first_five_bytes() -> None:
    """An AES KCV is the first 5 bytes of CMAC(key, 16 zero bytes), per an independent CMAC."""
    key = Key.from_hex(AES_HEX, KeyAlgorithm.AES_128)
    expected = reference_cmac(bytes.fromhex(AES_HEX), bytes(16))
    assert key.kcv() == expected[:5]
    assert key.kcv(3) == expected[:3]


def test_from_hex_accepts_matching_check_value_of_any_length() -> None:
    """A key parses when the given KCV (2, 3 or 4 bytes, any case) matches its own."""
    key = Key.from_hex(ANSI_HEX.lower(), KeyAlgorithm.TDES_2KEY, kcv="08d7")
    full = key.kcv(4).hex()
    assert Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY, kcv=full) == key


def test_from_hex_rejects_a_malformed_check_value() -> None:
    """An odd-length or non-hex KCV is a format error naming the check value."""
    with pytest.raises(KeyFormatError, match="check value: needs an even number of hex digits"):
        Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY, kcv="08D")
    with pytest.raises(KeyFormatError, match="check value: not hexadecimal"):
        Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY, kcv="08DZ")


def test_from_hex_rejects_wrong_check_value_without_echoing_the_key() -> None:
    """A mismatched KCV names the key and both check values, never the key digits."""
    with pytest.raises(KeyCheckError) as caught:
        Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY, kcv="08D8", what="TMK of T0000001")
    text = str(caught.value)
    assert "TMK of T0000001" in text and "08D8" in text and "08D7" in text
    assert ANSI_HEX[:8] not in text.upper()
    assert caught.value.expected == "08D8" and caught.value.computed == "08D7"


@pytest.mark.parametrize(
    ("text", "algorithm", "message"),
    [
        (ANSI_HEX[:-1], KeyAlgorithm.TDES_2KEY, "needs 32 hex digits, got 31"),
        (ANSI_HEX, KeyAlgorithm.TDES_3KEY, "needs 48 hex digits, got 32"),
        (ANSI_HEX[:-1] + "G", KeyAlgorithm.AES_128, "not hexadecimal"),
    ],
)
def test_from_hex_rejects_malformed_text_with_a_clear_message(
    text: str, algorithm: KeyAlgorithm, message: str
) -> None:
    """Wrong length or a non-hex digit raise KeyFormatError saying which, without the key."""
    with pytest.raises(KeyFormatError, match=message) as caught:
        Key.from_hex(text, algorithm, what="MAK")
    assert "MAK" in str(caught.value)
    assert ANSI_HEX[4:20] not in str(caught.value).upper()


def test_key_bytes_never_render_in_repr_str_format_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """repr, str, f-strings, containers and log records show algorithm and KCV only."""
    key = Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY)
    logging.getLogger("poslab.test").warning("loaded %s / %r / %s", key, key, [key])
    rendered = [repr(key), str(key), f"{key}", repr({"k": key}), caplog.text]
    assert repr(key) == "Key(TDES-2, kcv=08D7B4)"
    for text in rendered:
        for part in (ANSI_HEX[:8], ANSI_HEX[8:16], ANSI_HEX[16:24], ANSI_HEX[24:]):
            assert part not in text.upper()


def test_key_refuses_pickling_and_copies_are_itself() -> None:
    """Pickling a key raises (no accidental serialisation); copy and deepcopy keep one object."""
    key = Key.generate(KeyAlgorithm.AES_128)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(key, protocol=protocol)
    assert copy.copy(key) is key and copy.deepcopy(key) is key
    assert not hasattr(key, "__dict__")


def test_keys_compare_by_algorithm_and_bytes() -> None:
    """Equal bytes and algorithm are equal; the same bytes as AES are a different key."""
    tdes = Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY)
    assert tdes == Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY)
    assert tdes != Key.from_hex(ANSI_HEX, KeyAlgorithm.AES_128)
    assert len({tdes, Key.from_hex(ANSI_HEX, KeyAlgorithm.TDES_2KEY)}) == 1


@pytest.mark.parametrize("algorithm", list(KeyAlgorithm))
def test_generated_keys_are_fresh_and_tdes_ones_have_odd_parity(algorithm: KeyAlgorithm) -> None:
    """Generated keys differ each time; TDES keys have odd parity and distinct 8-byte parts."""
    keys = [Key.generate(algorithm) for _ in range(20)]
    assert len({k.get_secret_value() for k in keys}) == 20
    for key in keys:
        material = key.get_secret_value()
        assert len(material) == algorithm.length
        if algorithm.is_tdes:
            assert has_odd_parity(material)
            parts = [material[i : i + 8] for i in range(0, len(material), 8)]
            assert all(a != b for a, b in zip(parts, parts[1:], strict=False))


def test_parity_adjustment_matches_psec() -> None:
    """Odd-parity adjustment agrees with psec's on every byte value."""
    every_byte = bytes(range(256))
    assert adjust_odd_parity(every_byte) == psec_des.adjust_key_parity(every_byte)
    assert has_odd_parity(adjust_odd_parity(every_byte))
    assert not has_odd_parity(bytes(8))


def test_single_des_key_check_value_and_generation() -> None:
    """A single DES key has 8 bytes; its KCV is DES(key, 8 zero bytes) (0123456789ABCDEF gives
    the well-known D5D44F); generated ones have odd parity."""
    assert Key.from_hex("0123456789ABCDEF", KeyAlgorithm.DES).kcv().hex().upper() == "D5D44F"
    with pytest.raises(KeyFormatError, match="needs 16 hex digits"):
        Key.from_hex(ANSI_HEX, KeyAlgorithm.DES)
    key = Key.generate(KeyAlgorithm.DES)
    assert len(key.get_secret_value()) == 8 and has_odd_parity(key.get_secret_value())
    assert repr(key).startswith("Key(DES, kcv=")
