"""describe() explains the security fields (DE52, DE53, DE62, DE64/DE128) without secrets."""

from __future__ import annotations

from protocol.describe import describe

BLOCK = "0123456789ABCDEF"
KEYS = "11" * 16 + "AABBCCDD" + "22" * 16 + "EEFF0011"


def test_pin_block_mac_and_security_control() -> None:
    """DE52 shows its size only, DE53 its digits in words, DE64 the scheme and size."""
    text = describe({"t": "0200", "52": BLOCK, "53": "0200000000000000", "64": "A1" * 8})
    assert "[PIN block, 8 bytes]" in text and BLOCK not in text
    assert "PIN block ISO format 0, TDES double length, keys from sign-on" in text
    assert "[MAC, 8 bytes]  MAC (x9.19, 8 bytes)" in text and "A1A1" not in text


def test_sign_on_key_block_shows_kcvs_not_keys() -> None:
    """An 0810's DE62 shows how many wrapped keys and their KCVs, never the wrapped bytes."""
    text = describe({"t": "0810", "62": KEYS, "70": "001"})
    assert "[wrapped keys, 40 bytes]  2 wrapped keys (PIN, MAC), KCVs AABBCCDD, EEFF0011" in text
    assert "1111" not in text


def test_request_ksn_and_unknown_de53_digit() -> None:
    """A request's DE62 reads as a DUKPT KSN with its counter; a DE53 digit poslab does not
    know is named instead of guessed."""
    text = describe({"t": "0200", "62": "FFFF9876543210E00002", "53": "0900000000000000"})
    assert "DUKPT KSN, transaction counter 2" in text
    assert "DE53 digit 2: unknown key algorithm '9'" in text
