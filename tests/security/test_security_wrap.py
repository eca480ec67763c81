"""Working keys wrapped under the TMK for sign-on, and unwrapped only when their KCV checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psec import des as psec_des
from security_oracle import psec_call

from protocol.security import (
    Key,
    KeyAlgorithm,
    KeyCheckError,
    KeyWrapError,
    WorkingKeys,
    WrappedKey,
    unwrap_key,
    wrap_key,
)

pytestmark = pytest.mark.filterwarnings("error")

TMK_HEX = "0123456789ABCDEFFEDCBA9876543210"
PIK_HEX = "89ABCDEF0123456776543210FEDCBA98"


def tdes(hex_text: str) -> Key:
    """A TDES key from hex (2 or 3 parts by length)."""
    kind = KeyAlgorithm.TDES_2KEY if len(hex_text) == 32 else KeyAlgorithm.TDES_3KEY
    return Key.from_hex(hex_text, kind)


def test_tdes_wrap_is_tdes_ecb_under_the_tmk_with_kcv() -> None:
    """A TDES working key wraps to psec's TDES-ECB of its bytes, followed by its KCV."""
    wrapped = wrap_key(tdes(TMK_HEX), tdes(PIK_HEX), kcv_length=4)
    expected = psec_call(psec_des.encrypt_tdes_ecb, bytes.fromhex(TMK_HEX), bytes.fromhex(PIK_HEX))
    assert wrapped.ciphertext == expected
    assert wrapped.kcv == psec_call(psec_des.generate_kcv, bytes.fromhex(PIK_HEX), 4)
    assert wrapped.to_bytes() == expected + wrapped.kcv
    assert unwrap_key(tdes(TMK_HEX), wrapped) == tdes(PIK_HEX)


def test_aes_wrap_reproduces_rfc3394_vector() -> None:
    """AES working keys use RFC 3394 key wrap: section 4.1's 128-bit vector reproduces."""
    kek = Key.from_hex("000102030405060708090A0B0C0D0E0F", KeyAlgorithm.AES_128)
    key = Key.from_hex("00112233445566778899AABBCCDDEEFF", KeyAlgorithm.AES_128)
    wrapped = wrap_key(kek, key)
    assert wrapped.ciphertext.hex().upper() == "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"
    assert unwrap_key(kek, wrapped) == key


def test_unwrap_rejects_a_key_whose_check_value_does_not_match() -> None:
    """A TDES key unwrapped under the wrong TMK fails its check value, naming the key."""
    wrapped = wrap_key(tdes(TMK_HEX), tdes(PIK_HEX), kcv_length=4)
    other_tmk = Key.generate(KeyAlgorithm.TDES_2KEY)
    with pytest.raises(KeyCheckError, match="MAC key"):
        unwrap_key(other_tmk, wrapped, what="MAC key")
    tampered = WrappedKey(wrapped.algorithm, wrapped.ciphertext, b"\x00\x00\x00\x00")
    with pytest.raises(KeyCheckError):
        unwrap_key(tdes(TMK_HEX), tampered)


def test_aes_unwrap_detects_a_corrupted_key() -> None:
    """A flipped bit in an AES-wrapped key fails RFC 3394's integrity check."""
    kek = Key.generate(KeyAlgorithm.AES_128)
    wrapped = wrap_key(kek, Key.generate(KeyAlgorithm.AES_128))
    corrupt = bytes([wrapped.ciphertext[0] ^ 1]) + wrapped.ciphertext[1:]
    with pytest.raises(KeyWrapError, match="unwrap failed"):
        unwrap_key(kek, WrappedKey(wrapped.algorithm, corrupt, wrapped.kcv))


@pytest.mark.parametrize(
    ("kek", "key"),
    [
        (KeyAlgorithm.TDES_2KEY, KeyAlgorithm.AES_128),
        (KeyAlgorithm.AES_128, KeyAlgorithm.TDES_2KEY),
        (KeyAlgorithm.TDES_2KEY, KeyAlgorithm.TDES_3KEY),
    ],
)
def test_wrap_refuses_a_weaker_or_foreign_kek(kek: KeyAlgorithm, key: KeyAlgorithm) -> None:
    """No key is wrapped under another family's key or a shorter TDES key."""
    with pytest.raises(KeyWrapError, match="cannot be wrapped"):
        wrap_key(Key.generate(kek), Key.generate(key))


def test_wrapped_key_repr_shows_no_ciphertext() -> None:
    """A wrapped key renders as algorithm and KCV only."""
    wrapped = wrap_key(tdes(TMK_HEX), tdes(PIK_HEX), kcv_length=4)
    assert repr(wrapped) == f"WrappedKey(TDES-2, kcv={wrapped.kcv.hex().upper()})"


@pytest.mark.parametrize(("with_data", "size"), [(False, 40), (True, 60)])
def test_working_keys_payload_sizes_and_round_trip(with_data: bool, size: int) -> None:
    """Double-length PIK+MAK(+TDK) with 4-byte KCVs take 40 (60) bytes and unwrap to the same."""
    tmk = tdes(TMK_HEX)
    keys = WorkingKeys.generate(KeyAlgorithm.TDES_2KEY, with_data=with_data)
    payload = keys.wrap(tmk)
    assert len(payload) == size
    assert WorkingKeys.unwrap(tmk, payload, KeyAlgorithm.TDES_2KEY) == keys


def test_working_keys_unwrap_names_the_key_that_fails() -> None:
    """A corrupted MAC-key check value is reported as the MAC key's; a bad length is rejected."""
    tmk = tdes(TMK_HEX)
    payload = bytearray(WorkingKeys.generate(KeyAlgorithm.TDES_2KEY).wrap(tmk))
    payload[39] ^= 0xFF
    with pytest.raises(KeyCheckError, match="MAC key"):
        WorkingKeys.unwrap(tmk, bytes(payload), KeyAlgorithm.TDES_2KEY)
    with pytest.raises(KeyWrapError, match="41 bytes"):
        WorkingKeys.unwrap(tmk, bytes(payload[:41]), KeyAlgorithm.TDES_2KEY)


@given(
    algorithm=st.sampled_from(list(KeyAlgorithm)),
    kcv_length=st.integers(min_value=2, max_value=5),
    seed=st.binary(min_size=24, max_size=24),
)
def test_wrap_unwrap_round_trip(algorithm: KeyAlgorithm, kcv_length: int, seed: bytes) -> None:
    """Any key wrapped under a KEK of its own kind unwraps to itself with its check value."""
    kek_kind = KeyAlgorithm.TDES_3KEY if algorithm.is_tdes else KeyAlgorithm.AES_128
    kek = Key.generate(kek_kind)
    key = Key(algorithm, seed[: algorithm.length])
    wrapped = wrap_key(kek, key, kcv_length=kcv_length)
    assert len(wrapped.kcv) == kcv_length
    assert unwrap_key(kek, wrapped) == key


def test_single_des_keys_wrap_as_one_block_under_the_tdes_tmk() -> None:
    """A single DES working key is one TDES-ECB block under the TMK (psec agrees) with its 4-byte
    check value; PIN and MAC key take 24 bytes and unwrap to the same; an AES TMK cannot
    carry them, and a single DES key protects no double-length one."""
    tmk = tdes(TMK_HEX)
    key = Key.from_hex("0123456789ABCDEF", KeyAlgorithm.DES)
    wrapped = wrap_key(tmk, key, kcv_length=4)
    expected = psec_call(psec_des.encrypt_tdes_ecb, bytes.fromhex(TMK_HEX),
                         bytes.fromhex("0123456789ABCDEF"))
    assert wrapped.to_bytes() == expected + bytes.fromhex("D5D44FF7")
    keys = WorkingKeys.generate(KeyAlgorithm.DES, with_data=False)
    payload = keys.wrap(tmk)
    assert len(payload) == 24
    assert WorkingKeys.unwrap(tmk, payload, KeyAlgorithm.DES) == keys
    with pytest.raises(KeyWrapError, match="cannot be wrapped"):
        wrap_key(Key.generate(KeyAlgorithm.AES_128), key)
    with pytest.raises(KeyWrapError, match="weaker DES key"):
        wrap_key(key, tmk)
