"""Keys, MACs and PINs over mutual TLS: a real ``poslab-host`` process whose ISO port requires
a terminal certificate naming DE41, with MACs required, driven by the terminal's own engine.

Two terminals on one host: TERM0001 knows only its TMK and gets its working keys at sign-on;
TERM0002 uses DUKPT (the host holds the BDK, the terminal its initial key and KSN). Each makes a
PIN sale, a partial refund and a void through its own client certificate, and every answer's
MAC is checked again here under a key derived independently of the terminal. Then an
independent client (stdlib ``ssl``, pyiso8583's default spec, :mod:`protocol.security`) sends a
request whose MAC was sealed before one byte changed: 63 ``MAC_FAILED``, nothing booked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from tls_iso_client import TlsIsoClient
from tls_pki import Issued, Pki, make_pki

from protocol.codec import Codec
from protocol.codes import EntryMode, RefundReason
from protocol.money import Money
from protocol.security import (
    TDES_DUKPT,
    DukptTerminal,
    Key,
    KeyAlgorithm,
    Ksn,
    WorkingKeys,
    encipher_pin,
    get_mac_scheme,
)
from protocol.security.dukpt import derive_ipek, transaction_keys
from scenarios.admin import BlockingAdminClient
from scenarios.loadgen.procs import ServerProcess, python_module
from terminal.cards import load_deck
from terminal.config import TerminalConfig
from terminal.engine import Engine
from terminal.flow import Draft, Original, Outcome
from terminal.journal import Journal, TxnKind
from terminal.link import Link, Traffic
from terminal.security.keystore import KeyStore
from terminal.tls import ClientTls

MID = "MERCHANT0000001"
TMK_TID, DUKPT_TID = "TERM0001", "TERM0002"
TMK = Key.from_hex("0123456789ABCDEFFEDCBA9876543210", KeyAlgorithm.TDES_2KEY)
BDK = Key.from_hex("C1D0F8FB4958670DBA40AB1F3752EF0D", KeyAlgorithm.TDES_2KEY)
KSN0 = Ksn.from_hex("FFFF9876543210E00000")
X919 = get_mac_scheme("x9.19")
CARD = {c.name: c for c in load_deck()}["Mastercard approve"]  # catalogue PIN 1234
PAN = CARD.pan.digits
#: the host's simulated time, and the terminal's clock pinned to it (Shanghai)
START = datetime(2026, 3, 10, 10, 0, tzinfo=timezone(timedelta(hours=8)))
_STANS = count(900001)


def host_config(pki: Pki) -> str:
    """Mutual TLS naming the TID, TERM0001 with a TMK and TERM0002 on DUKPT, MACs required."""
    return f"""
[[merchants]]
id = "{MID}"
terminals = ["{TMK_TID}", "{DUKPT_TID}"]

[[cards]]
pan = "{PAN}"
expiry = "3012"
pin = "1234"

[tls.iso]
cert_file = "{pki.server.cert}"
key_file = "{pki.server.key}"
client_ca_file = "{pki.ca}"
require_client_cert = true
tid_in_certificate = true

[security]
bdk = "{BDK.get_secret_value().hex().upper()}"
bdk_kcv = "{BDK.kcv().hex().upper()}"

[[security.terminals]]
tid = "{TMK_TID}"
tmk = "{TMK.get_secret_value().hex().upper()}"
tmk_kcv = "{TMK.kcv().hex().upper()}"
mac = "required"

[[security.terminals]]
tid = "{DUKPT_TID}"
key_management = "dukpt"
mac = "required"
"""


@dataclass(frozen=True)
class MtlsHost:
    """The host process, the CA its terminals' certificates come from, and its admin API."""

    server: ServerProcess
    pki: Pki

    @property
    def port(self) -> int:
        """The ISO 8583 port (mutual TLS)."""
        return int(self.server.ready["iso_port"])

    def admin(self) -> BlockingAdminClient:
        """The admin API (plain HTTP on loopback)."""
        return BlockingAdminClient(int(self.server.ready["admin_port"]),
                                   str(self.server.ready["admin_token"]))

    def booked(self, tid: str) -> dict[str, dict[str, Any]]:
        """The transactions booked for ``tid``, by STAN."""
        page = self.admin().get(f"/transactions?tid={tid}&limit=1000")
        return {str(t["stan"]): t for t in page["transactions"]}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MtlsHost]:
    """One host for the module, on the simulated clock, with a fresh throw-away CA."""
    where = tmp_path_factory.mktemp("mtls-security")
    pki = make_pki(where / "pki")
    config = where / "host.toml"
    config.write_text(host_config(pki), encoding="utf-8")
    server = ServerProcess([*python_module("host"), "--listen", "127.0.0.1:0",
                            "--admin", "127.0.0.1:0", "--db", str(where / "ledger.db"),
                            "--config", str(config), "--clock", "simulated",
                            "--start", START.isoformat()], name="poslab-host")
    yield MtlsHost(server, pki)
    assert server.stop() == 0


# -- the terminal's engine -------------------------------------------------------------------


@dataclass
class Till:
    """The terminal's engine on a mutual-TLS link, with every message it saw."""

    engine: Engine
    link: Link
    traffic: list[Traffic]

    async def sale(self, minor: int, pin: str | None = None) -> Outcome:
        """A chip sale of ``minor`` fen on the PIN card."""
        return await self.engine.transact(Draft(TxnKind.SALE, Money(minor, "CNY"), CARD,
                                                EntryMode.CHIP, pin=pin))

    async def refund(self, sale: Outcome, minor: int, of_minor: int) -> Outcome:
        """A partial refund of ``minor`` against ``sale`` (of ``of_minor``)."""
        original = Original(self.rrn(sale), amount_minor=of_minor, remaining_minor=of_minor)
        return await self.engine.transact(Draft(TxnKind.REFUND, Money(minor, "CNY"), CARD,
                                                EntryMode.CHIP, original, RefundReason.RETURN,
                                                "SUP"))

    async def void(self, sale: Outcome, minor: int) -> Outcome:
        """The void of ``sale`` (of ``minor``)."""
        return await self.engine.transact(Draft(TxnKind.VOID, Money(minor, "CNY"), None, None,
                                                Original(self.rrn(sale), amount_minor=minor),
                                                None, "SUP"))

    def rrn(self, sale: Outcome) -> str:
        """The host's RRN of an approved ``sale``, from the terminal's journal."""
        assert sale.txn_seq is not None, sale
        return self.engine.journal.get(sale.txn_seq).rrn or ""

    def financial_pairs(self) -> list[tuple[Traffic, Traffic]]:
        """Each 0200 sent with the answer received for it."""
        sent = {t.fields["11"]: t for t in self.traffic
                if t.direction == "sent" and t.mti == "0200"}
        return [(sent[t.fields["11"]], t) for t in self.traffic
                if t.direction == "received" and t.mti == "0210"]


def till(host: MtlsHost, tid: str, data_dir: Path) -> Till:
    """The engine of terminal ``tid`` with its own client certificate and the keys already
    stored in ``data_dir``."""
    cert = host.pki.client(tid)
    tls = ClientTls(str(host.pki.ca), str(cert.cert), str(cert.key))
    config = TerminalConfig(port=host.port, terminal_id=tid, merchant_id=MID, data_dir=data_dir,
                            timeout_s_response=10.0, echo_interval_s=0, tls=tls)
    traffic: list[Traffic] = []
    link = Link(config.host, config.port, Codec(config.profile), on_traffic=traffic.append,
                tls=config.tls)
    return Till(Engine(config, Journal(config.data_dir), link, clock=lambda: START), link,
                traffic)


async def pin_sale_refund_void(term: Till) -> list[Outcome]:
    """A wrong PIN, then the flow issue 14 asks for: a PIN sale of 100.00, a partial refund of
    30.00, a sale of 5.00 and its void."""
    wrong = await term.sale(10000, pin="9999")
    assert wrong.response_code == "55", wrong  # the host did check the PIN block
    sale = await term.sale(10000, pin="1234")
    assert sale.approved, sale
    refund = await term.refund(sale, 3000, 10000)
    small = await term.sale(500)
    void = await term.void(small, 500)
    return [sale, refund, small, void]


# -- the independent client ------------------------------------------------------------------


def request(tid: str, amount_minor: int, **more: str) -> dict[str, str]:
    """A 0200 sale of ``amount_minor`` with a placeholder MAC in DE64, plus ``more`` fields."""
    return {"t": "0200", "2": PAN, "3": "000000", "4": f"{amount_minor:012d}",
            "7": "0310020000", "11": f"{next(_STANS):06d}", "12": "100000", "13": "0310",
            "14": "3012", "22": "051", "25": "00", "41": tid, "42": MID, "49": "156",
            "64": "00" * 8, **more}


def sealed(fields: dict[str, str], mac_key: Key, *, tamper: bool = False) -> bytes:
    """``fields`` encoded and MAC'd (X9.19 up to DE64); ``tamper`` then changes one digit of
    the amount, as a line fault or an attacker would."""
    raw = TlsIsoClient.encode(fields)
    raw = raw[:-8] + X919.compute(mac_key, raw[:-8])
    if tamper:
        at = raw.index(fields["4"].encode())
        raw = raw[:at] + b"9" + raw[at + 1:]
    return raw


@dataclass(frozen=True)
class Macd:
    """A request and the keys that MAC it and its answer."""

    fields: dict[str, str]
    mac_key: Key
    answer_key: Key


def check_tamper_refused(client: TlsIsoClient, host: MtlsHost, tampered: Macd,
                         honest: Macd) -> None:
    """``tampered`` changed after its MAC gets 63 MAC_FAILED (no MAC) and books nothing;
    ``honest``, the same kind of request sealed the same way, is approved with a MAC'd answer
    (so the 63 is the changed byte's doing, not a wrong key or framing)."""
    refused = client.send_raw(sealed(tampered.fields, tampered.mac_key, tamper=True))
    assert (refused["39"], refused.get("44")) == ("63", "MAC_FAILED"), refused
    assert "64" not in refused
    approved = client.send_raw(sealed(honest.fields, honest.mac_key))
    assert approved["39"] == "00", approved
    assert X919.verify(honest.answer_key, client.last_raw[:-8], client.last_raw[-8:])
    booked = host.booked(tampered.fields["41"])
    assert tampered.fields["11"] not in booked
    assert booked[honest.fields["11"]]["amount_minor"] == 2500


def connect(host: MtlsHost, cert: Issued) -> TlsIsoClient:
    """A stdlib-ssl connection to the host's ISO port showing ``cert``."""
    return TlsIsoClient(host.port, host.pki.ca, cert)


# -- the tests -------------------------------------------------------------------------------


def test_tmk_terminal_over_mutual_tls(host: MtlsHost, tmp_path: Path, run: Any) -> None:
    """Over mutual TLS a terminal knowing only its TMK signs on and gets keys, makes a PIN sale
    (a wrong PIN 55), a partial refund and a void, all approved with answers MAC'd under the
    MAC key the host sent; a request changed by one byte after its MAC gets 63 and books
    nothing."""
    KeyStore(tmp_path / "term").save_tmk(TMK)
    term = till(host, TMK_TID, tmp_path / "term")

    async def go() -> list[Outcome]:
        try:
            assert (await term.engine.sign_on()).approved
            return await pin_sale_refund_void(term)
        finally:
            term.link.close()

    outcomes = run(go(), timeout=30)
    assert [o.response_code for o in outcomes] == ["00"] * 4, outcomes
    keys = term.engine.session.sign_on_state.keys
    assert keys is not None
    signed_on = next(t for t in term.traffic if t.mti == "0810")
    assert WorkingKeys.unwrap(TMK, bytes.fromhex(signed_on.fields["62"]),
                              KeyAlgorithm.TDES_2KEY).mac == keys.mac
    pairs = term.financial_pairs()
    assert len(pairs) == 5
    for request_sent, answer in pairs:
        assert X919.verify(keys.mac, request_sent.raw[:-8], request_sent.raw[-8:])
        assert X919.verify(keys.mac, answer.raw[:-8], answer.raw[-8:]), answer.fields
    booked = host.booked(TMK_TID)
    assert sorted(t["amount_minor"] for t in booked.values()
                  if t["response_code"] == "00") == [500, 500, 3000, 10000]

    with connect(host, host.pki.client(TMK_TID)) as client:
        signed = client.exchange({"t": "0800", "7": "0310020000", "11": f"{next(_STANS):06d}",
                                  "41": TMK_TID, "42": MID, "70": "001"})
        assert signed["39"] == "00"
        fresh = WorkingKeys.unwrap(TMK, bytes.fromhex(signed["62"]), KeyAlgorithm.TDES_2KEY)
        check_tamper_refused(client, host, Macd(request(TMK_TID, 2500), fresh.mac, fresh.mac),
                             Macd(request(TMK_TID, 2500), fresh.mac, fresh.mac))
    assert host.admin().get("/ledger/verify")["ok"]


def test_dukpt_terminal_over_mutual_tls(host: MtlsHost, tmp_path: Path, run: Any) -> None:
    """Over mutual TLS a DUKPT terminal (initial key and KSN, no sign-on keys) makes a PIN sale
    (a wrong PIN 55), a partial refund and a void, each under the next KSN and all approved
    with answers MAC'd under that KSN's response key from the BDK; a request changed by one
    byte after its MAC gets 63 and books nothing."""
    ipek = derive_ipek(BDK, KSN0)
    KeyStore(tmp_path / "term").save_dukpt(DukptTerminal(TDES_DUKPT, ipek, KSN0), ipek)
    term = till(host, DUKPT_TID, tmp_path / "term")

    async def go() -> list[Outcome]:
        try:
            assert (await term.engine.sign_on()).approved  # no keys: DUKPT derives its own
            return await pin_sale_refund_void(term)
        finally:
            term.link.close()

    outcomes = run(go(), timeout=30)
    assert [o.response_code for o in outcomes] == ["00"] * 4, outcomes
    pairs = term.financial_pairs()
    ksns = [Ksn.from_hex(sent.fields["62"]) for sent, _ in pairs]
    assert [k.counter for k in ksns] == [1, 2, 3, 4, 5]
    for (request_sent, answer), ksn in zip(pairs, ksns, strict=True):
        keys = transaction_keys(derive_ipek(BDK, ksn), ksn)
        assert X919.verify(keys.mac_request, request_sent.raw[:-8], request_sent.raw[-8:])
        assert X919.verify(keys.mac_response, answer.raw[:-8], answer.raw[-8:]), answer.fields
    booked = host.booked(DUKPT_TID)
    assert sorted(t["amount_minor"] for t in booked.values()
                  if t["response_code"] == "00") == [500, 500, 3000, 10000]

    device = DukptTerminal(TDES_DUKPT, ipek, ksns[-1])

    def next_request() -> Macd:
        keys = device.next_transaction()
        pin_block = encipher_pin(keys.pin, "1234", PAN).get_secret_value().hex()
        fields = request(DUKPT_TID, 2500, **{"52": pin_block, "53": "0210000000000000",
                                             "62": str(keys.ksn)})
        return Macd(fields, keys.mac_request, keys.mac_response)

    with connect(host, host.pki.client(DUKPT_TID)) as client:
        check_tamper_refused(client, host, next_request(), next_request())
    assert host.admin().get("/ledger/verify")["ok"]
