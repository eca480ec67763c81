"""AES DUKPT (ANSI X9.24-3-2017) against the standard's AES-128 sample vectors."""

from __future__ import annotations

import pytest
from psec import aes as psec_aes

from protocol.security import (
    AES_DUKPT,
    AesKsn,
    DukptHost,
    DukptTerminal,
    Key,
    KeyAlgorithm,
    KeyFormatError,
    KsnExhaustedError,
    decipher_pin,
    encipher_pin,
    get_mac_scheme,
)
from protocol.security.mac import cmac

pytestmark = pytest.mark.filterwarnings("error")

BDK = Key.from_hex("FEDCBA9876543210F1F1F1F1F1F1F1F1", KeyAlgorithm.AES_128)
INITIAL_KSN = AesKsn.from_hex("123456789012345600000000")
DATA = b"4012345678909D987"

# X9.24-3-2017 Annex B.1 (AES-128 BDK), as transcribed in moov-io/dukpt pkg/aes/aes_test.go:
# counter, transaction key, CMAC request, CMAC response, request and response data
# (AES-CBC, zero IV).
SEQUENCE = [
    (1, "4F21B565BAD9835E112B6465635EAE44", "A2EB5C1C35809E58404E873C3C411E31",
     "DD4E1895FD9BF53D8DAF25568ABF551D",
     "E5AFA5B408A3310E3D779C8A9A2AE29448BD5B4232582090DB703AF647205A79",
     "84904DFC6B5201A4F1FE2EAA49E70B8C01838EF53030790FF785D630AB3916B4"),
    (2, "2F34D68DE10F68D38091A73B9E7C437C", "4D104704C53491A60944193DCAF6B411",
     "008CEAAE2B913BEEE76209EE9406DAC1",
     "A17A9658EE0F451D6CA11B65B592EF9C5F90BB175D926F1457B63B3273042476",
     "699ED7BC85994F1C11DE1C40177A629530E85262EA0B02FB80771255DC1F65B6"),
    (3, "031504E530365CF81264238540518318", "6A18904AA8E966A03505F5EEBDAEBD82",
     "40CB2F0C2E043D060063FAA916A849E1",
     "E289C32A084A39419A6C147DE40B53A67BABE2BD22DC3D5EE09B002E83B93ACE",
     "0F440D9321C1ABBEF9CA7008B40CF18B3045A84D5435D6CF9A4955E3451C49E9"),
    (4, "0EEFC7ADA628BA68878DA9165A8A1887", "77BBD3FB827158B9B12880B0794D1C74",
     "51FDE192BC484F769AA0A86F8BC5CB30",
     "D074C0F81866781B92D008C8EA6A3947319B94361C7ECD3C1736020E0D57E629",
     "08A3D4FB24E9CA4864F63E1AB518C69327D87A6A709B9336E3E60FA7F312759A"),
    (5, "C2A7AC328A5DA2D6002D62465BFC028B", "C0CE6DA1F4434AD16EEEBF486C9616CD",
     "4B508F51104D184A9190061ED854200E",
     "8F222D79AE7F942BF74D3EA9E364C0000D0C94AD7EA0A8CCF23330FCA4B1D0D0",
     "400E67A22795467C145D7A5D2475DFD8041C233C6E2D004CEDBEBA25AE5CE1A7"),
    (6, "D30F7D9351DA58448A2F5E92B4EE3B7D", "05222AE91471C590B3A9471523324C14",
     "ED90BD8AE4571C75CF08EA3EA195ABF8",
     "19C254B0498CBD32E597D882B7D993513994EE913836E65711EA41F8D4B34728",
     "1524F027685DCDA7197E0DE3CB87EF83C6D61D2E483D47678C4914DEC2320B08"),
    (7, "A8253CEED9AC042C54F75D35C8352278", "37FA54258AAF805A44AA1273C0DF928C",
     "52D6C1D3A95B1D21761E20870D9A7E8C",
     "0710C8F0EB136629E30ADFB148562F6F80B786EC1074428B7C7511B7301EAAF0",
     "8CA084F21F599C7361C8F2B1565D993779C62EC3496F0113DF17B5C29EA4E404"),
    (8, "718EE6CF0B27E53D5F7AF99C4D8146A2", "85C7CA68F55F51E7DCAC969B8C111130",
     "B45399DB90C0BA75DB4B86605758695A",
     "304EC254A7B528D9892E47F7C1315D498C0D88EA8CD71CA52D38F362721AEA67",
     "8CD1A54538B9DC79A5DF4544ADE8D1F1A085AC1F89AA59BFF49351A68957DE1B"),
]  # fmt: skip


def test_initial_key_from_bdk() -> None:
    """BDK FEDCBA98…F1F1, initial key ID 1234567890123456: initial key 1273671E…52A1."""
    initial_key = DukptHost(AES_DUKPT, BDK).initial_key(INITIAL_KSN.with_counter(5))
    assert initial_key.get_secret_value().hex().upper() == "1273671EA26AC29AFA4D1084127652A1"


@pytest.mark.parametrize(
    ("counter", "current", "cmac_request", "cmac_response", "data", "response_data"), SEQUENCE
)
def test_sample_sequence(
    counter: int,
    current: str,
    cmac_request: str,
    cmac_response: str,
    data: str,
    response_data: str,
) -> None:
    """Counters 1-8: transaction keys, request/response CMACs and request/response data."""
    keys = DukptHost(AES_DUKPT, BDK).keys_for(INITIAL_KSN.with_counter(counter))
    assert keys.transaction.get_secret_value().hex().upper() == current
    assert cmac(keys.mac_request, DATA).hex().upper() == cmac_request
    assert cmac(keys.mac_response, DATA).hex().upper() == cmac_response
    assert get_mac_scheme("aes-cmac").verify(
        keys.mac_request, DATA, bytes.fromhex(cmac_request)[:8]
    )
    padded = DATA + bytes(-len(DATA) % 16)
    encrypted = psec_aes.encrypt_aes_cbc(keys.data_request.get_secret_value(), bytes(16), padded)
    assert encrypted.hex().upper() == data
    encrypted = psec_aes.encrypt_aes_cbc(keys.data_response.get_secret_value(), bytes(16), padded)
    assert encrypted.hex().upper() == response_data


def test_terminal_walks_the_sequence_and_pins_round_trip() -> None:
    """A loaded terminal advances 1..8 like the host, and its format 4 PIN blocks read back."""
    host = DukptHost(AES_DUKPT, BDK)
    terminal = DukptTerminal(AES_DUKPT, host.initial_key(INITIAL_KSN), INITIAL_KSN)
    for counter, current, *_ in SEQUENCE:
        keys = terminal.next_transaction()
        assert keys.ksn.counter == counter
        assert keys.transaction.get_secret_value().hex().upper() == current
        block = encipher_pin(keys.pin, "1234", "4111111111111111")
        assert decipher_pin(host.keys_for(keys.ksn).pin, block, "4111111111111111") == "1234"


def test_counter_rules() -> None:
    """Counters skip values with more than 16 one bits and stop at the last 32-bit value."""
    assert INITIAL_KSN.with_counter(0xFFFE).next().counter == 0xFFFF
    assert INITIAL_KSN.with_counter(0xFFFF).next().counter == 0x10000
    assert INITIAL_KSN.with_counter(0x7FFF8000).next().counter == 0x80000000
    with pytest.raises(KsnExhaustedError, match="1234567890123456"):
        INITIAL_KSN.with_counter(0xFFFF0000).next()


def test_wrong_key_kind_and_ksn_length() -> None:
    """AES DUKPT refuses a TDES BDK and a KSN that is not 12 bytes."""
    with pytest.raises(KeyFormatError, match="AES-128 BDK, not TDES-2"):
        DukptHost(AES_DUKPT, Key.generate(KeyAlgorithm.TDES_2KEY))
    with pytest.raises(KeyFormatError, match="12 bytes, not 10"):
        AesKsn.from_hex("FFFF9876543210E00001")
