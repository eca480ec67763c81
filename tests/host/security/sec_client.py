"""An independent secure terminal for the host security tests.

Frames are built and read by plain pyiso8583 with the spec below (the library's ``default``
1987 spec, written out here for the fields these tests use), over a blocking socket with a
2-byte length header: nothing of poslab's codec or of :mod:`protocol.security.wire` builds or
checks them. MACs (ISO 9797-1 algorithm 3 over the message up to the MAC field), PIN blocks
(ISO 9564 format 0) and key unwrapping use the :mod:`protocol.security` primitives, which have
their own published-vector tests.
"""

from __future__ import annotations

import copy
import io
import socket
import struct
import subprocess
import sys
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from itertools import count
from pathlib import Path
from typing import Any

import iso8583
from iso8583.specs import default as _PYISO_DEFAULT

from host import cli as host_cli
from protocol.security import Key, KeyAlgorithm, WorkingKeys, encipher_pin, get_mac_scheme
from scenarios.loadgen.procs import ServerProcess, python_module

SPEC: dict[str, dict[str, Any]] = copy.deepcopy(_PYISO_DEFAULT)
# The fields the security tests rely on, spelt out (they match pyiso8583's default spec).
SPEC["52"].update(data_enc="b", len_type=0, max_len=8, desc="PIN data")
SPEC["53"].update(data_enc="ascii", len_type=0, max_len=16, desc="Security control")
SPEC["62"].update(data_enc="ascii", len_type=3, max_len=999, desc="Reserved private")
SPEC["64"].update(data_enc="b", len_type=0, max_len=8, desc="MAC")

MID = "MERCHANT0000001"
X919 = get_mac_scheme("x9.19")
TMK_HEX = "C1D0F8FB4958670DBA40AB1F3752EF0D"
TMK = Key.from_hex(TMK_HEX, KeyAlgorithm.TDES_2KEY)
BDK_HEX = "0123456789ABCDEFFEDCBA9876543210"
BDK = Key.from_hex(BDK_HEX, KeyAlgorithm.TDES_2KEY)
KSN_HEX = "FFFF9876543210E00000"
_STANS = count(1)


def config_text(*, tmk_kcv: str | None = None, with_tmk: bool = True,
                keyed: Sequence[str] = ("TERM0001",), plain: Sequence[str] = ("TERM0002",),
                dukpt: Sequence[str] = ("TERM0003",)) -> str:
    """A host config: two PIN cards; the ``keyed`` terminals (TERM0001) with a TMK (``tmk_kcv``
    as its check value when given) and MACs required, the ``dukpt`` ones (TERM0003) on DUKPT
    with MACs required, the ``plain`` ones (TERM0002) with no keys in the config."""
    kcv = tmk_kcv or TMK.kcv().hex().upper()
    tmk = f'tmk = "{TMK_HEX}"\ntmk_kcv = "{kcv}"' if with_tmk else ""
    tids = ", ".join(f'"{tid}"' for tid in sorted([*keyed, *plain, *dukpt]))
    security = "".join(f'\n[[security.terminals]]\ntid = "{tid}"\n{tmk}\nmac = "required"\n'
                       for tid in keyed)
    security += "".join(f'\n[[security.terminals]]\ntid = "{tid}"\nkey_management = "dukpt"\n'
                        'mac = "required"\n' for tid in dukpt)
    return f"""
[[merchants]]
id = "{MID}"
terminals = [{tids}]

[[cards]]
pan = "4111111111111111"
pin = "1234"

[[cards]]
pan = "5555555555554444"
pin = "4321"

[security]
bdk = "{BDK_HEX}"
bdk_kcv = "{BDK.kcv().hex().upper()}"
{security}"""


def start_host(tmp: Path, db: str, config: str, *more: str) -> ServerProcess:
    """``poslab-host`` in a subprocess on ``db`` with ``config``, simulated clock."""
    path = tmp / "host.toml"
    path.write_text(config, encoding="utf-8")
    argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--db", db, "--config", str(path), "--clock", "simulated",
            "--start", "2026-03-10T02:00:00+00:00", *more]
    return ServerProcess(argv, name="poslab-host")


def run_host_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``poslab-host ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "host", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def run_host_command(*args: str) -> subprocess.CompletedProcess[str]:
    """:func:`run_host_cli` for a command that starts no server (``keys generate``), through
    the CLI's entry point in this process: a new interpreter per call added ~1 s of start-up
    and checked nothing more (tests/host/shell/test_cli_process.py runs the CLI as a process)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = host_cli.main(list(args))
    return subprocess.CompletedProcess(["poslab-host", *args], status, out.getvalue(),
                                       err.getvalue())


class SecureTerminal:
    """A terminal that signs on, MACs its requests and checks the host's response MACs."""

    def __init__(self, port: int, tid: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.reader = self.sock.makefile("rb")
        self.tid = tid
        self.keys: WorkingKeys | None = None
        self.last_raw = b""

    def close(self) -> None:
        """Close the socket."""
        self.reader.close()
        self.sock.close()

    def exchange(self, raw: bytes) -> dict[str, Any]:
        """Send one encoded message; keep the answer's bytes in :attr:`last_raw`."""
        self.sock.sendall(struct.pack("!H", len(raw)) + raw)
        size = struct.unpack("!H", self._read(2))[0]
        self.last_raw = self._read(size)
        answer, _ = iso8583.decode(self.last_raw, SPEC)
        return answer

    def _read(self, n: int) -> bytes:
        data: bytes = self.reader.read(n)
        if len(data) < n:
            raise ConnectionError("host closed the connection")
        return data

    def sign_on(self, tmk: Key = TMK) -> dict[str, Any]:
        """0800 DE70=001; unwrap the working keys of the 0810 (raises if a KCV fails)."""
        raw, _ = iso8583.encode({"t": "0800", "7": "0310100000", "11": _stan(), "41": self.tid,
                                 "42": MID, "70": "001"}, SPEC)
        answer = self.exchange(bytes(raw))
        if "62" in answer:
            self.keys = WorkingKeys.unwrap(tmk, bytes.fromhex(answer["62"]),
                                           KeyAlgorithm.TDES_2KEY)
        return answer

    def sale(self, pan: str, amount_minor: int, *, code: str = "000000", rrn: str | None = None,
             pin: str | None = None, pin_key: Key | None = None, mac_key: Key | None = None,
             ksn: str | None = None, management: str = "0", tamper: bool = False
             ) -> dict[str, Any]:
        """A 0200 (a sale, or with ``code`` and ``rrn`` a refund or void); with a PIN block
        (DE52/DE53), a KSN (DE62) and a MAC (DE64) as asked.

        ``tamper`` changes one byte of the amount after the MAC was computed."""
        fields: dict[str, Any] = {
            "t": "0200", "2": pan, "3": code, "4": f"{amount_minor:012d}",
            "7": "0310100000", "11": _stan(), "12": "100000", "13": "0310", "14": "3012",
            "22": "051", "25": "00", "41": self.tid, "42": MID, "49": "156"}
        if rrn is not None:
            fields["37"] = rrn
        if pin is not None:
            assert pin_key is not None
            fields["52"] = encipher_pin(pin_key, pin, pan).get_secret_value().hex()
            fields["53"] = f"02{management}".ljust(16, "0")
        if ksn is not None:
            fields["62"] = ksn
        if mac_key is not None:
            fields["64"] = "00" * 8
        raw = bytes(iso8583.encode(fields, SPEC)[0])
        if mac_key is not None:
            raw = raw[:-8] + X919.compute(mac_key, raw[:-8])
        if tamper:
            at = raw.index(fields["4"].encode())
            raw = raw[:at] + b"9" + raw[at + 1:]
        return self.exchange(raw)

    def response_mac_ok(self, key: Key) -> bool:
        """True when the last answer ends in its X9.19 MAC under ``key``."""
        return X919.verify(key, self.last_raw[:-8], self.last_raw[-8:])


def _stan() -> str:
    return f"{next(_STANS):06d}"
