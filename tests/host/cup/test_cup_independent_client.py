"""``poslab-host --profile cup`` over real TCP, driven by an independent CUP client.

Nothing of poslab's protocol package builds, reads or MACs these frames: the client is plain
pyiso8583 with the CUP spec written out below from the public layout (BCD numerics with BCD
length prefixes counting digits, ASCII text, binary keys and MAC, BCD MTI, a 5-byte TPDU and
a 6-byte BCD header), the working keys are unwrapped and the CUP ECB POS MAC computed by the
algorithm written out here on psec's TDES. The day: sign-on, sale, partial refund (0220),
over-refund (declined 61), a second sale voided, a new sign-on, and a balanced settlement;
on SQLite and on PostgreSQL. A second day signs on for single-length DES keys (60.3 ``001``),
unwrapped, MAC'd and PIN-enciphered here with ``cryptography``'s DES.
"""

from __future__ import annotations

import socket
import struct
import warnings
from collections.abc import Iterator
from itertools import count
from typing import Any

import iso8583
import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.utils import CryptographyDeprecationWarning
from psec import des as psec_des

from scenarios.admin import BlockingAdminClient, verify
from scenarios.loadgen.procs import ServerProcess, python_module

TMK_HEX = "C1D0F8FB4958670DBA40AB1F3752EF0D"
TID, MID = "TERM0001", "MERCHANT0000001"
SINGLE_TID = "TERM0002"  # the single-length day's own terminal: its sign-ons, batch and PIN tries
UNIONPAY, VISA = "6212345678901232", "4111111111111111"
TPDU = bytes.fromhex("6000120000")  # ID 60, destination 0012, source 0000


def _bcd(max_len: int, len_type: int = 0) -> dict[str, Any]:
    """A numeric field: BCD digits; a variable one with a BCD prefix counting digits."""
    entry: dict[str, Any] = {"data_enc": "b", "len_enc": "bcd", "len_type": len_type,
                             "max_len": max_len, "len_count": "nibbles", "desc": ""}
    if len_type:
        entry["right_pad"] = "F"
    elif max_len % 2:
        entry["left_pad"] = "0"
    return entry


def _text(max_len: int, len_type: int = 0) -> dict[str, Any]:
    """A text field: ASCII; a variable one with a BCD prefix counting bytes."""
    return {"data_enc": "ascii", "len_enc": "bcd", "len_type": len_type, "max_len": max_len,
            "desc": ""}


def _binary(max_len: int, len_type: int = 0) -> dict[str, Any]:
    return {"data_enc": "b", "len_enc": "bcd", "len_type": len_type, "max_len": max_len,
            "desc": ""}


SPEC: dict[str, dict[str, Any]] = {
    "h": _binary(6),  # 12 BCD digits: application class 60, version 31, status, request
    "t": _binary(2),  # MTI, 4 BCD digits
    "p": _binary(8),  # primary bitmap
    "1": _binary(8),
    "2": _bcd(19, 1),  # PAN, LL
    "3": _bcd(6), "4": _bcd(12), "11": _bcd(6), "12": _bcd(6), "13": _bcd(4), "14": _bcd(4),
    "15": _bcd(4), "22": _bcd(3), "25": _bcd(2), "32": _bcd(11, 1),
    "37": _text(12), "38": _text(6), "39": _text(2), "41": _text(8), "42": _text(15),
    "44": _text(25, 1), "48": _bcd(322, 2), "49": _text(3), "52": _binary(8), "53": _bcd(16),
    "54": _text(20, 2),  # balance: account type, amount type, currency, C/D, amount
    "60": _bcd(17, 2), "61": _bcd(29, 2), "62": _binary(512, 2), "63": _text(163, 2),
    "64": _binary(8),
}


def _tdes(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    with warnings.catch_warnings():  # psec builds TDES from cryptography's old namespace
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        fn = psec_des.decrypt_tdes_ecb if decrypt else psec_des.encrypt_tdes_ecb
        out: bytes = fn(key, block)
        return out


def _des(key: bytes, block: bytes, *, decrypt: bool = False) -> bytes:
    """Single DES-ECB: TDES with the 8-byte key as all three parts (K|K|K)."""
    cipher = Cipher(TripleDES(key * 3), modes.ECB())
    ctx = cipher.decryptor() if decrypt else cipher.encryptor()
    return ctx.update(block) + ctx.finalize()


def cup_mac(key: bytes, data: bytes) -> bytes:
    """The CUP ECB POS MAC: zero-pad to 8-byte blocks, XOR them, write the result as 16
    upper-case hex characters, encrypt the first 8 under the MAC key, XOR with the last 8,
    encrypt again; the first 8 hex characters of that, as ASCII. An 8-byte MAC key encrypts
    as single DES."""
    padded = data + bytes(-len(data) % 8)
    folded = bytes(8)
    for i in range(0, len(padded), 8):
        folded = bytes(a ^ b for a, b in zip(folded, padded[i:i + 8], strict=True))
    text = folded.hex().upper().encode()
    encrypt = _des if len(key) == 8 else _tdes
    first = encrypt(key, text[:8])
    second = encrypt(key, bytes(a ^ b for a, b in zip(first, text[8:], strict=True)))
    return second.hex().upper()[:8].encode()


def unwrap(tmk: bytes, block: bytes) -> list[bytes]:
    """DE62: each 16-byte key encrypted under the TMK (ECB) and its 4-byte check value (the
    key's encryption of eight zero bytes); the check values must hold."""
    keys = []
    for at in range(0, len(block), 20):
        key = _tdes(tmk, block[at:at + 16], decrypt=True)
        assert _tdes(key, bytes(8))[:4] == block[at + 16:at + 20], "check value"
        keys.append(key)
    return keys


def unwrap_single(tmk: bytes, block: bytes) -> list[bytes]:
    """DE62 of a 60.3 001 sign-on: each 8-byte DES key is one block encrypted under the TDES
    TMK (ECB), then its 4-byte check value (single DES of eight zero bytes under the key)."""
    assert len(block) == 24, "two keys of 8 + 4 bytes"
    keys = []
    for at in (0, 12):
        key = _tdes(tmk, block[at:at + 8], decrypt=True)
        assert _des(key, bytes(8))[:4] == block[at + 8:at + 12], "check value"
        assert all(bin(b).count("1") % 2 for b in key), "odd parity"
        keys.append(key)
    return keys


def pin_block(key: bytes, pin: str, pan: str) -> str:
    """ISO 9564 format 0 (PIN field XOR 0000 + 12 PAN digits before the check digit) under a
    single DES PIN key, as DE52 hex."""
    pin_field = bytes.fromhex(f"0{len(pin):X}{pin}".ljust(16, "F"))
    pan_field = bytes.fromhex(pan[:-1][-12:].rjust(16, "0"))
    clear = bytes(a ^ b for a, b in zip(pin_field, pan_field, strict=True))
    return _des(key, clear).hex().upper()


class CupClient:
    """One CUP terminal over a blocking socket: 2-byte length, TPDU, header, then the body."""

    def __init__(self, port: int, tid: str = TID) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.tid = tid
        self.mac_key: bytes | None = None
        self.pin_key: bytes | None = None
        self.batch = "000000"
        self._stans = count(1)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("host closed the connection")
            data += chunk
        return data

    def send(self, fields: dict[str, str], *, mac: bool) -> dict[str, Any]:
        """Encode (MAC'd when asked), send, read the answer; a MAC'd answer's MAC is checked."""
        doc = {"h": "603100000000", "11": f"{next(self._stans):06d}", "41": self.tid, "42": MID,
               **fields}
        if mac:
            doc["64"] = "00" * 8
        raw = bytearray(iso8583.encode(doc, SPEC)[0])
        if mac:
            assert self.mac_key is not None
            body = bytes(raw[6:-8])  # MTI up to DE64, without the header
            raw[-8:] = cup_mac(self.mac_key, body)
        frame = TPDU + bytes(raw)
        self.sock.sendall(struct.pack("!H", len(frame)) + frame)
        reply = self._read(struct.unpack("!H", self._read(2))[0])
        assert reply[:5] == TPDU[:1] + TPDU[3:5] + TPDU[1:3]  # addresses swapped
        answer, _ = iso8583.decode(reply[5:], SPEC)
        if "64" in answer:
            assert self.mac_key is not None
            assert cup_mac(self.mac_key, reply[5 + 6:-8]) == reply[-8:], "response MAC"
        return answer

    def sign_on(self) -> dict[str, Any]:
        """0800, 60.3 004; the MAC key from DE62, the batch from 60.2."""
        answer = self.send({"t": "0800", "60": f"00{self.batch}004", "63": "001"}, mac=False)
        assert answer["39"] == "00"
        pin_key, mac_key, data_key = unwrap(bytes.fromhex(TMK_HEX),
                                            bytes.fromhex(answer["62"]))
        self.mac_key, self.batch = mac_key, answer["60"][2:8]
        return answer

    def sign_on_single(self) -> dict[str, Any]:
        """0800, 60.3 001: single-length PIN and MAC keys from DE62, the batch from 60.2."""
        answer = self.send({"t": "0800", "60": f"00{self.batch}001", "63": "001"}, mac=False)
        assert (answer["39"], answer["60"][8:]) == ("00", "001")
        self.pin_key, self.mac_key = unwrap_single(bytes.fromhex(TMK_HEX),
                                                   bytes.fromhex(answer["62"]))
        self.batch = answer["60"][2:8]
        return answer

    def financial(self, mti: str, code: str, type_code: str, amount: int, pan: str,
                  **more: str) -> dict[str, Any]:
        """A MAC'd 0200/0220: DE3, DE4, DE22 swiped without PIN, DE25 00, DE49 CNY, DE60."""
        fields = {"t": mti, "2": pan, "3": code, "4": f"{amount:012d}", "22": "022",
                  "25": "00", "49": "156", "60": f"{type_code}{self.batch}000", **more}
        return self.send(fields, mac=True)


def _config() -> str:
    tmk = bytes.fromhex(TMK_HEX)
    kcv = _tdes(tmk, bytes(8))[:3].hex().upper()
    return f"""
[[merchants]]
id = "{MID}"
terminals = ["{TID}", "{SINGLE_TID}"]

[[cards]]
pan = "{UNIONPAY}"
pin = "1234"

[[security.terminals]]
tid = "{TID}"
tmk = "{TMK_HEX}"
tmk_kcv = "{kcv}"
mac = "required"

[[security.terminals]]
tid = "{SINGLE_TID}"
tmk = "{TMK_HEX}"
tmk_kcv = "{kcv}"
mac = "required"
"""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def host(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``poslab-host --profile cup`` on a fresh ledger of each backend, simulated clock; one
    per module and backend (a start costs ~1 s of CPU), each test on a terminal of its own."""
    tmp_path = tmp_path_factory.mktemp("cup-host")
    db = str(tmp_path / "poslab.db") if request.param == "sqlite" else \
        str(request.getfixturevalue("module_pg_url"))
    config = tmp_path / "host.toml"
    config.write_text(_config(), encoding="utf-8")
    server = ServerProcess(
        [*python_module("host"), "--profile", "cup", "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", "--db", db, "--config", str(config),
         "--clock", "simulated", "--start", "2026-03-10T02:00:00+00:00"], name="poslab-host")
    yield server
    assert server.stop() == 0


def test_cup_day_from_an_independent_client(host: ServerProcess) -> None:
    """Sign-on, sale 00, partial refund 00 (0230), over-refund 61 (both with what remains in
    DE54), void of a second sale 00, sign-on again, settlement balanced (0510 flag 1); the
    ledger verifies."""
    client = CupClient(int(host.ready["iso_port"]))
    try:
        client.sign_on()
        assert client.batch == "000001"
        sale = client.financial("0200", "000000", "22", 10000, UNIONPAY)
        assert (sale["t"], sale["39"]) == ("0210", "00") and sale["38"] and "64" in sale
        original = {"37": sale["37"], "61": "000000" "000000" + sale["13"]}
        refund = client.financial("0220", "200000", "25", 3000, UNIONPAY, **original)
        assert (refund["t"], refund["39"]) == ("0230", "00")
        assert refund["54"] == "0090156C000000007000"  # 70.00 of the sale left to refund
        over = client.financial("0220", "200000", "25", 8000, UNIONPAY, **original)
        assert (over["39"], over["44"]) == ("61", "REFUND_EXCEEDS_REMAINING")
        assert over["54"] == "0090156C000000007000"
        other = client.financial("0200", "000000", "22", 2500, VISA)
        void = client.financial("0200", "200000", "23", 2500, VISA, **{
            "37": other["37"], "61": client.batch + other["11"]})
        assert (void["t"], void["39"]) == ("0210", "00")
        client.sign_on()  # new keys, same batch
        assert client.batch == "000001"
        # Domestic: the sale 100.00 debit, the refund 30.00 credit; foreign: the voided sale
        # 25.00 still a debit, its void 25.00 a credit.
        totals = ("000000010000" "001" "000000003000" "001" "0"
                  "000000002500" "001" "000000002500" "001" "0")
        settled = client.send({"t": "0500", "48": totals, "49": "156",
                               "60": f"00{client.batch}201", "63": "001"}, mac=False)
        assert (settled["t"], settled["39"]) == ("0510", "00")
        assert settled["48"] == totals[:30] + "1" + totals[31:61] + "1"  # flag 1: balanced
        assert client.sign_on()["60"] == "00000002004"  # the next batch
    finally:
        client.close()
    api = BlockingAdminClient(int(host.ready["admin_port"]), str(host.ready["admin_token"]))
    assert api.fetch(verify()).ok


def test_single_length_sign_on_from_an_independent_client(host: ServerProcess) -> None:
    """60.3 001: DE62 is two single DES keys under the TMK with their check values; a sale
    MAC'd and PIN-enciphered under them (DE53 53.2 0) is approved with a response MAC under
    the single MAC key; a wrong PIN is 55, a double-length DE53 99, a wrong MAC A0."""
    client = CupClient(int(host.ready["iso_port"]), SINGLE_TID)
    try:
        client.sign_on_single()
        assert client.pin_key is not None and client.mac_key is not None
        assert client.pin_key != client.mac_key

        def pin_sale(pin: str, control: str = "2000000000000000") -> dict[str, Any]:
            assert client.pin_key is not None
            return client.financial("0200", "000000", "22", 5000, UNIONPAY, **{
                "22": "021", "52": pin_block(client.pin_key, pin, UNIONPAY), "53": control})

        sale = pin_sale("1234")
        assert (sale["t"], sale["39"]) == ("0210", "00") and "64" in sale
        assert pin_sale("9999")["39"] == "55"
        assert pin_sale("1234", control="2600000000000000")["39"] == "99"
        good_key = client.mac_key
        client.mac_key = bytes(b ^ 0x02 for b in good_key)  # not the parity bit: a key
        try:
            forged = client.financial("0200", "000000", "22", 100, UNIONPAY)
        finally:
            client.mac_key = good_key
        assert (forged["39"], forged["44"]) == ("A0", "MAC_FAILED")
    finally:
        client.close()
