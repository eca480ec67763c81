"""MAC algorithms against published vectors and psec, and the scheme registry's verify."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psec import mac as psec_mac
from security_oracle import psec_call, reference_cup_mac

from protocol.security import MAC_SCHEMES, Key, KeyAlgorithm, KeyFormatError, get_mac_scheme
from protocol.security.mac import Padding, cbc_mac, cmac, cup_ecb_mac, pad, retail_mac

pytestmark = pytest.mark.filterwarnings("error")

ANSI_HEX = "0123456789ABCDEFFEDCBA9876543210"
RFC4493_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
RFC4493_MESSAGE = bytes.fromhex(
    "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E51"
    "30C81C46A35CE411E5FBC1191A0A52EFF69F2445DF4F9B17AD2B417BE66C3710"
)
MESSAGE = b"0200 the message from MTI up to the MAC field"


def tdes_key(hex_text: str = ANSI_HEX) -> Key:
    """A double-length TDES key from hex."""
    return Key.from_hex(hex_text, KeyAlgorithm.TDES_2KEY)


@pytest.mark.parametrize(
    ("length", "tag"),
    [
        (0, "BB1D6929E95937287FA37D129B756746"),
        (16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (40, "DFA66747DE9AE63030CA32611497C827"),
        (64, "51F0BEBF7E3B9D92FC49741779363CFE"),
    ],
)
def test_aes_cmac_reproduces_rfc4493(length: int, tag: str) -> None:
    """AES-CMAC gives RFC 4493 section 4's four tags; the scheme keeps the first 8 bytes."""
    key = Key.from_hex(RFC4493_KEY, KeyAlgorithm.AES_128)
    data = RFC4493_MESSAGE[:length]
    assert cmac(key, data).hex().upper() == tag
    assert get_mac_scheme("aes-cmac").compute(key, data).hex().upper() == tag[:16]


def test_x919_reproduces_the_x9_24_dukpt_request_mac() -> None:
    """X9.19 of "4012345678909D987" under the X9.24-1 counter-1 MAC key is 9CCC78173FC4FB64."""
    # Transaction key 042666B49184CFA368DE9628D0397BC9 XOR the MAC request variant.
    mac_key = tdes_key("042666B4918430A368DE9628D03984C9")
    assert retail_mac(mac_key, b"4012345678909D987").hex().upper() == "9CCC78173FC4FB64"


@pytest.mark.parametrize("padding", list(Padding))
@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 16, 45])
def test_retail_mac_matches_psec(padding: Padding, length: int) -> None:
    """ISO 9797-1 alg 3 equals psec's retail MAC with the key passed as two halves."""
    key = bytes.fromhex(ANSI_HEX)
    data = MESSAGE[:length]
    expected = psec_call(psec_mac.generate_retail_mac, key[:8], key[8:], data, int(padding))
    assert retail_mac(tdes_key(), data, padding) == expected


@pytest.mark.parametrize("padding", list(Padding))
@pytest.mark.parametrize(
    ("algorithm", "hex_key"),
    [
        (KeyAlgorithm.TDES_2KEY, ANSI_HEX),
        (KeyAlgorithm.TDES_3KEY, ANSI_HEX + "89ABCDEF01234567"),
        (KeyAlgorithm.AES_128, RFC4493_KEY),
    ],
)
def test_cbc_mac_matches_psec(padding: Padding, algorithm: KeyAlgorithm, hex_key: str) -> None:
    """ISO 9797-1 alg 1 (TDES and AES, both paddings) equals psec's CBC-MAC."""
    data = MESSAGE
    psec_algorithm = psec_mac.Algorithm.DES if algorithm.is_tdes else psec_mac.Algorithm.AES
    expected = psec_call(
        psec_mac.generate_cbc_mac, bytes.fromhex(hex_key), data, int(padding), None, psec_algorithm
    )
    assert cbc_mac(Key.from_hex(hex_key, algorithm), data, padding) == expected


# A 0200 frame posted in a public Q&A (q.cnblogs.com/q/128930) with its CUP MAC B3A092AE.
PUBLISHED_0200 = bytes.fromhex(
    "007F6000030000603210320072020030200480 00C0801500000000000000123400000203009930"
    "303030303030313935323731383138323231373837353135360019260000010006000000000043"
    "5F0112323834343132333435363738393031323334 5F030631363030 33365F04063230303832"
    "365C0230314233413039324145".replace(" ", "")
)


def test_cup_ecb_mac_reproduces_a_published_0200() -> None:
    """The CUP ECB MAC of a 0200 frame posted in a public Q&A (q.cnblogs.com/q/128930) is B3A092AE.

    The frame is a 2-byte length, 5-byte TPDU, 6-byte header, then MTI ... DE63 and the MAC;
    the MAK has equal halves, so TDES is the single DES the poster's terminal used.
    """
    frame = PUBLISHED_0200
    mab, mac_field = frame[13:-8], frame[-8:]
    assert mac_field == b"B3A092AE"
    key = tdes_key("0723C80DB5F4CD3D0723C80DB5F4CD3D")
    assert cup_ecb_mac(key, mab) == mac_field
    assert get_mac_scheme("cup-ecb").verify(key, mab, mac_field)


@pytest.mark.parametrize("length", [0, 3, 8, 13, 64, 100])
def test_cup_ecb_mac_matches_a_step_by_step_reference(length: int) -> None:
    """With a proper double-length MAK the CUP MAC equals the steps written out on psec TDES."""
    data = (MESSAGE * 3)[:length]
    assert cup_ecb_mac(tdes_key(), data) == reference_cup_mac(bytes.fromhex(ANSI_HEX), data)


def test_padding_methods() -> None:
    """Method 1 adds zeros (one zero block for empty data); method 2 adds 0x80 then zeros."""
    assert pad(b"", 8, Padding.METHOD_1) == bytes(8)
    assert pad(b"12345678", 8, Padding.METHOD_1) == b"12345678"
    assert pad(b"123", 8, Padding.METHOD_2) == b"123\x80" + bytes(4)
    assert pad(b"12345678", 8, Padding.METHOD_2) == b"12345678\x80" + bytes(7)


def test_registry_names_and_unknown_scheme_message() -> None:
    """The registry holds the named schemes; an unknown name lists the known ones."""
    assert {"iso9797-1-alg1", "x9.19", "aes-cmac", "cup-ecb"} <= set(MAC_SCHEMES)
    with pytest.raises(ValueError, match="unknown MAC scheme 'x9.9'; known schemes: aes-cmac"):
        get_mac_scheme("x9.9")


def test_scheme_refuses_a_key_of_the_wrong_kind() -> None:
    """X9.19 needs a double-length TDES key; AES-CMAC an AES key."""
    with pytest.raises(KeyFormatError, match="needs a TDES-2 key, not AES-128"):
        get_mac_scheme("x9.19").compute(Key.generate(KeyAlgorithm.AES_128), MESSAGE)
    with pytest.raises(KeyFormatError, match="AES-CMAC needs a AES-128 key"):
        get_mac_scheme("aes-cmac").compute(tdes_key(), MESSAGE)


def key_for(scheme: str) -> Key:
    """A fresh key of the kind ``scheme`` takes."""
    return Key.generate(KeyAlgorithm.AES_128 if scheme == "aes-cmac" else KeyAlgorithm.TDES_2KEY)


@given(
    scheme=st.sampled_from(sorted(MAC_SCHEMES)),
    data=st.binary(min_size=1, max_size=200),
    where=st.integers(min_value=0),
    in_mac=st.booleans(),
)
def test_verify_rejects_any_single_flipped_bit(
    scheme: str, data: bytes, where: int, in_mac: bool
) -> None:
    """A MAC verifies over its own data, and fails when any one bit of data or MAC flips."""
    mac_scheme = get_mac_scheme(scheme)
    key = key_for(scheme)
    mac = mac_scheme.compute(key, data)
    assert len(mac) == 8 and mac_scheme.verify(key, data, mac)
    target = bytearray(mac if in_mac else data)
    bit = where % (len(target) * 8)
    target[bit // 8] ^= 1 << (bit % 8)
    if in_mac:
        assert not mac_scheme.verify(key, data, bytes(target))
    else:
        assert not mac_scheme.verify(key, bytes(target), mac)


def test_cup_ecb_mac_under_a_single_des_key() -> None:
    """The published 0200's MAK has equal halves, so its single-length half gives the same
    CUP MAC, B3A092AE; a single-length key takes only the CUP MAC, not X9.19."""
    frame = PUBLISHED_0200
    key = Key.from_hex("0723C80DB5F4CD3D", KeyAlgorithm.DES)
    assert get_mac_scheme("cup-ecb").compute(key, frame[13:-8]) == b"B3A092AE"
    with pytest.raises(KeyFormatError, match="needs a TDES-2 key, not DES"):
        get_mac_scheme("x9.19").compute(key, MESSAGE)
