"""TDES DUKPT (ANSI X9.24-1:2009) against the standard's published initial sequence."""

from __future__ import annotations

import pytest
from psec import des as psec_des
from security_oracle import psec_call

from protocol.security import (
    TDES_DUKPT,
    DukptHost,
    DukptTerminal,
    Key,
    KeyAlgorithm,
    KeyFormatError,
    Ksn,
    KsnExhaustedError,
    decipher_pin,
    encipher_pin,
    get_mac_scheme,
)
from protocol.security.dukpt import derive_ipek

pytestmark = pytest.mark.filterwarnings("error")

BDK = Key.from_hex("0123456789ABCDEFFEDCBA9876543210", KeyAlgorithm.TDES_2KEY)
INITIAL_KSN = Ksn.from_hex("FFFF9876543210E00000")
IPEK_HEX = "6AC292FAA1315B4D858AB3A3D7D5933A"
PIN, PAN, DATA = "1234", "4012345678909", b"4012345678909D987"

# X9.24-1:2009 A.4.2 "Initial Sequence", as transcribed in moov-io/dukpt pkg/des/des_test.go:
# counter, current transaction key, PIN block, request MAC, response MAC, request data,
# response data.
SEQUENCE = [
    (1, "042666B49184CFA368DE9628D0397BC9", "1B9C1845EB993A7A", "9CCC78173FC4FB64",
     "20364223C1FF00FA", "FC0D53B7EA1FDA9EE68AAF2E70D9B9506229BE2AA993F04F",
     "1FCC89AF66222F27B903898BB2BC8589CDBFDE5EC6AFCC25"),
    (2, "C46551CEF9FD24B0AA9AD834130D3BC7", "10A01C8D02C69107", "F608A9BCA6FFC311",
     "D1FCA6BEF05D24D2", "A2B4E70F846E63D68775B7215EB4563DFD3037244C61CC13",
     "5B692A6B1FDD5E25B0DEFAFDE1672E402F8011360CFF3508"),
    (3, "0DF3D9422ACA56E547676D07AD6BADFA", "18DC07B94797B466", "20B59A4FEAC937E3",
     "BAD4CC9CC2AE326C", "BD751E65F10E75B6C1D5B1D283496A36C2DE21D993C387A7",
     "345992D4163E4926C927BFD8ABD5D76F087A9CE81D5A27B8"),
    (4, "279C0F6AEED0BE652B2C733E1383AE91", "0BC79509D5645DF7", "C7BFA6CC44161828",
     "1EB08AEECE6FF0C2", "1118F50947441BBDA3C8C70220021A12EC31CC473F7215F4",
     "418C7413576C0D1819E785D3807AF32334231FDEC23414DB"),
    (5, "5F8DC6D2C845C125508DDC048093B83F", "5BC0AF22AD87B327", "0202B96339022058",
     "5CBE3E81D1D2A0FB", "9FD7BD1EC28845ACA93367A9DA9317BD555C6B33AE22D365",
     "7D4C109E49E83355A556AE949EED359F4404E7A2F0167C00"),
]  # fmt: skip


def test_ipek_from_bdk_and_ksn() -> None:
    """BDK 0123…3210 and KSN FFFF9876543210E00000 give IPEK 6AC292FAA1315B4D858AB3A3D7D5933A."""
    ipek = derive_ipek(BDK, INITIAL_KSN)
    assert ipek.get_secret_value().hex().upper() == IPEK_HEX
    assert DukptHost(TDES_DUKPT, BDK).initial_key(INITIAL_KSN.with_counter(7)) == ipek


def test_counter_one_pin_key_and_pin_block() -> None:
    """Counter 1: transaction key 042666B4…7BC9, its PIN variant, and PIN block 1B9C1845EB993A7A."""
    keys = DukptHost(TDES_DUKPT, BDK).keys_for(INITIAL_KSN.with_counter(1))
    assert keys.transaction.get_secret_value().hex().upper() == "042666B49184CFA368DE9628D0397BC9"
    # The PIN key is the transaction key XOR 00000000000000FF00000000000000FF.
    assert keys.pin.get_secret_value().hex().upper() == "042666B49184CF5C68DE9628D0397B36"
    block = encipher_pin(keys.pin, PIN, PAN)
    assert block.get_secret_value().hex().upper() == "1B9C1845EB993A7A"


@pytest.mark.parametrize(
    (
        "counter",
        "current",
        "pin_block",
        "request_mac",
        "response_mac",
        "request_data",
        "response_data",
    ),
    SEQUENCE,
)
def test_initial_sequence(
    counter: int,
    current: str,
    pin_block: str,
    request_mac: str,
    response_mac: str,
    request_data: str,
    response_data: str,
) -> None:
    """Counters 1-5: keys, PIN blocks, X9.19 request/response MACs, request/response data."""
    keys = DukptHost(TDES_DUKPT, BDK).keys_for(INITIAL_KSN.with_counter(counter))
    assert keys.transaction.get_secret_value().hex().upper() == current
    block = encipher_pin(keys.pin, PIN, PAN)
    assert block.get_secret_value().hex().upper() == pin_block
    assert decipher_pin(keys.pin, block, PAN) == PIN
    x919 = get_mac_scheme("x9.19")
    assert x919.compute(keys.mac_request, DATA).hex().upper() == request_mac
    assert x919.compute(keys.mac_response, DATA).hex().upper() == response_mac
    padded = DATA + bytes(-len(DATA) % 8)
    encrypted = psec_call(
        psec_des.encrypt_tdes_cbc, keys.data_request.get_secret_value(), bytes(8), padded
    )
    assert encrypted.hex().upper() == request_data
    encrypted = psec_call(
        psec_des.encrypt_tdes_cbc, keys.data_response.get_secret_value(), bytes(8), padded
    )
    assert encrypted.hex().upper() == response_data


def test_terminal_and_host_derive_the_same_keys() -> None:
    """A terminal loaded with the IPEK advances 1, 2, 3… and the host derives the same keys."""
    host = DukptHost(TDES_DUKPT, BDK)
    terminal = DukptTerminal(TDES_DUKPT, host.initial_key(INITIAL_KSN), INITIAL_KSN)
    for expected_counter, current, *_ in SEQUENCE:
        keys = terminal.next_transaction()
        assert keys.ksn.counter == expected_counter
        assert keys.transaction.get_secret_value().hex().upper() == current
        assert host.keys_for(keys.ksn) == keys
    assert str(terminal.ksn) == "FFFF9876543210E00005"


def test_counter_skips_values_with_more_than_ten_one_bits() -> None:
    """After 0x0003FF (ten 1 bits) comes 0x000400, and after 0x0FFC00 comes 0x100000."""
    assert INITIAL_KSN.with_counter(0x3FE).next().counter == 0x3FF
    assert INITIAL_KSN.with_counter(0x3FF).next().counter == 0x400
    assert INITIAL_KSN.with_counter(0x0FFC00).next().counter == 0x100000


def test_exhausted_terminal_refuses_another_transaction() -> None:
    """At counter 0x1FF800 the terminal raises KsnExhaustedError and keeps its KSN."""
    last = INITIAL_KSN.with_counter(0x1FF800)
    terminal = DukptTerminal(TDES_DUKPT, derive_ipek(BDK, INITIAL_KSN), last)
    with pytest.raises(KsnExhaustedError, match="FFFF9876543210E00000"):
        terminal.next_transaction()
    assert terminal.ksn == last


def test_ksn_and_key_kind_errors() -> None:
    """A KSN must be 10 hex bytes; DUKPT refuses AES or triple-length keys."""
    with pytest.raises(KeyFormatError, match="10 bytes, not 8"):
        Ksn.from_hex("9876543210E00001")
    with pytest.raises(KeyFormatError, match="not hexadecimal"):
        Ksn.from_hex("FFFF9876543210E0000X")
    with pytest.raises(KeyFormatError, match="TDES-2 BDK, not AES-128"):
        DukptHost(TDES_DUKPT, Key.generate(KeyAlgorithm.AES_128))


def test_dukpt_objects_render_no_key_bytes() -> None:
    """Host, terminal and per-transaction keys render KCVs and the KSN, never key bytes."""
    host = DukptHost(TDES_DUKPT, BDK)
    terminal = DukptTerminal(TDES_DUKPT, host.initial_key(INITIAL_KSN), INITIAL_KSN)
    keys = terminal.next_transaction()
    text = repr(host) + repr(terminal) + repr(keys)
    assert "FFFF9876543210E00001" in text
    for secret in ("0123456789ABCDEF", IPEK_HEX[:16], "042666B49184CFA3"):
        assert secret not in text.upper()
