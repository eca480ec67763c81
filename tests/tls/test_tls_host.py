"""TLS and mutual TLS on a real ``poslab-host`` process, through real TCP.

The ISO 8583 client is independent of poslab: the standard library's ``ssl`` over a socket
and pyiso8583's own ``default`` spec. The certificates come from a throw-away CA made for the
module (tests/tls/conftest.py). Two hosts: one with TLS on both ports, one with mutual TLS on
the ISO port and ``tid_in_certificate``.
"""

from __future__ import annotations

import signal
import socket
import ssl
import struct
import subprocess
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import iso8583
import pytest
from iso8583.specs import default as PYISO_DEFAULT
from tls_iso_client import TlsIsoClient
from tls_pki import Issued, Pki, make_pki

from scenarios import cli as scenarios_cli
from scenarios.admin import AdminUnreachable, BlockingAdminClient
from scenarios.loadgen.procs import ServerProcess, python_module
from terminal.tls import ClientTls

TID, MID = "TERM0001", "MERCHANT0000001"
_STANS = count(1)


def _sale(tid: str = TID) -> dict[str, str]:
    return {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001234",
            "7": "1127090000", "11": f"{next(_STANS):06d}", "12": "090000", "13": "1127",
            "14": "3012", "22": "051", "25": "00", "41": tid, "42": MID, "49": "156"}


def exchange(port: int, fields: dict[str, str], ca: Path,
             client: Issued | None = None) -> dict[str, Any]:
    """One request over a fresh TLS connection; the decoded answer."""
    with TlsIsoClient(port, ca, client) as connection:
        return connection.exchange(fields)


def _start(argv: list[str]) -> ServerProcess:
    return ServerProcess([*python_module("host"), "--listen", "127.0.0.1:0",
                          "--admin", "127.0.0.1:0", *argv], name="poslab-host")


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One throw-away CA for the module's hosts."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_host(module_pki: Pki, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[ServerProcess]:
    """A host with TLS (no client certificates) on the ISO port and on the admin API."""
    db = tmp_path_factory.mktemp("tls") / "ledger.db"
    cert, key = str(module_pki.server.cert), str(module_pki.server.key)
    server = _start(["--db", str(db), "--tls-cert", cert, "--tls-key", key,
                     "--admin-tls-cert", cert, "--admin-tls-key", key])
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def mtls_host(module_pki: Pki, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[ServerProcess]:
    """A host whose ISO port requires a terminal certificate naming DE41 (admin plain)."""
    db = tmp_path_factory.mktemp("mtls") / "ledger.db"
    server = _start(["--db", str(db), "--tls-cert", str(module_pki.server.cert),
                     "--tls-key", str(module_pki.server.key),
                     "--tls-client-ca", str(module_pki.ca), "--tls-require-client-cert",
                     "--tls-tid-in-cert"])
    yield server
    assert server.stop() == 0


def _admin(server: ServerProcess, tls: ClientTls | None = None) -> BlockingAdminClient:
    return BlockingAdminClient(int(server.ready["admin_port"]), str(server.ready["admin_token"]),
                               tls=tls)


def _booked(admin: BlockingAdminClient, stan: str) -> list[dict[str, Any]]:
    page = admin.get(f"/transactions?tid={TID}&limit=1000")
    return [t for t in page["transactions"] if t.get("stan") == stan]


def test_sale_over_tls_is_approved_for_an_independent_client(
        tls_host: ServerProcess, module_pki: Pki) -> None:
    """A stdlib-ssl, pyiso8583 client verifying the host's certificate gets its sale approved."""
    sale = _sale()
    answer = exchange(int(tls_host.ready["iso_port"]), sale, module_pki.ca)
    assert (answer["t"], answer["39"], answer["11"]) == ("0210", "00", sale["11"])
    admin = _admin(tls_host, ClientTls(ca_file=str(module_pki.ca)))
    assert [t["amount_minor"] for t in _booked(admin, sale["11"])] == [1234]


def test_plain_tcp_to_the_tls_port_gets_no_iso_answer(tls_host: ServerProcess) -> None:
    """A frame sent without TLS is never taken as a request: the host closes, answering nothing."""
    body, _ = iso8583.encode(_sale(), PYISO_DEFAULT)
    with socket.create_connection(("127.0.0.1", int(tls_host.ready["iso_port"])),
                                  timeout=20) as sock:
        sock.sendall(struct.pack("!H", len(body)) + bytes(body))
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    assert b"0210" not in reply and b"4111111111111111" not in reply


def test_admin_api_over_tls_needs_the_ca(tls_host: ServerProcess, module_pki: Pki) -> None:
    """The admin API answers over HTTPS to a client trusting the CA; one that does not trust
    it (the system's CAs) is refused in the handshake."""
    assert "transactions" in _admin(tls_host, ClientTls(ca_file=str(module_pki.ca))).get(
        "/transactions?limit=1")
    with pytest.raises(AdminUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        _admin(tls_host, ClientTls()).get("/transactions?limit=1")


def test_async_admin_client_over_https(tls_host: ServerProcess, module_pki: Pki,
                                      run: Any) -> None:
    """The scenario runner's admin client (Twisted Agent) calls an https:// admin URL through
    the CA it is given."""
    from scenarios.admin import AdminClient

    url = f"https://127.0.0.1:{tls_host.ready['admin_port']}"
    client = AdminClient(url, str(tls_host.ready["admin_token"]),
                         ClientTls(ca_file=str(module_pki.ca)))
    assert "transactions" in run(client.get("/transactions?limit=1"))


def test_mtls_without_client_certificate_is_refused_and_books_nothing(
        mtls_host: ServerProcess, module_pki: Pki) -> None:
    """Mutual TLS: a terminal with no certificate never gets an answer and its sale is not
    booked; the host logs the refused handshake."""
    sale = _sale()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        exchange(int(mtls_host.ready["iso_port"]), sale, module_pki.ca)
    assert _booked(_admin(mtls_host), sale["11"]) == []
    assert "tls_handshake_failed" in mtls_host.stderr_tail(20000)


def test_certificate_of_another_ca_is_refused(mtls_host: ServerProcess, tmp_path: Path) -> None:
    """A terminal certificate from a CA the host does not trust is refused in the handshake."""
    other = make_pki(tmp_path / "other")
    sale = _sale()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        exchange(int(mtls_host.ready["iso_port"]), sale, other.ca, other.client(TID))


def test_certificate_for_another_tid_gets_58_and_books_nothing(
        mtls_host: ServerProcess, module_pki: Pki) -> None:
    """A certificate naming TERM0002 sending DE41 TERM0001 gets 58 CERT_TID_MISMATCH and
    nothing is booked; the same sale under TERM0001's own certificate is approved."""
    port, admin = int(mtls_host.ready["iso_port"]), _admin(mtls_host)
    sale = _sale()
    answer = exchange(port, sale, module_pki.ca, module_pki.client("TERM0002"))
    assert (answer["39"], answer.get("44")) == ("58", "CERT_TID_MISMATCH")
    assert _booked(admin, sale["11"]) == []
    assert "tls_tid_mismatch" in mtls_host.stderr_tail(20000)
    ok = exchange(port, sale, module_pki.ca, module_pki.client(TID))
    assert ok["39"] == "00"
    assert len(_booked(admin, sale["11"])) == 1


def test_dns_san_names_the_tid(mtls_host: ServerProcess, module_pki: Pki) -> None:
    """A terminal certificate may name its TID in a DNS subject alternative name."""
    cert = module_pki.client("shop-7 front till", dns=(TID,))
    answer = exchange(int(mtls_host.ready["iso_port"]), _sale(), module_pki.ca, cert)
    assert answer["39"] == "00"


SCENARIO = """\
name: sale over mutual TLS
steps:
  - sale: {card: "4111111111111111", amount: "12.00"}
    expect: {response: "00"}
"""


def test_scenarios_run_over_mutual_tls(mtls_host: ServerProcess, module_pki: Pki,
                                       tmp_path: Path) -> None:
    """``poslab-scenarios run --host`` with --tls-ca/--tls-cert/--tls-key passes on the mTLS
    host (the terminal's Link on TLS); without the client certificate the same run fails."""
    path = tmp_path / "sale.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    iso = f"127.0.0.1:{mtls_host.ready['iso_port']}"
    client = module_pki.client(TID)
    tls = ["--tls-ca", str(module_pki.ca), "--tls-cert", str(client.cert),
           "--tls-key", str(client.key)]
    assert scenarios_cli.main(["run", str(path), "--host", iso, "--tid", TID, "-q", *tls]) == 0
    assert scenarios_cli.main(["run", str(path), "--host", iso, "--tid", TID, "-q",
                               "--tls-ca", str(module_pki.ca)]) == 1


def _echo(tid: str = TID) -> dict[str, str]:
    return {"t": "0800", "7": "1127090000", "11": f"{next(_STANS):06d}", "70": "301",
            "41": tid, "42": MID}


def test_terminal_link_without_certificate_says_tls_failed(
        mtls_host: ServerProcess, module_pki: Pki, run: Any) -> None:
    """The terminal's link to an mTLS host, without a certificate, fails with the TLS reason
    (not a bare "closed"); with TERM0001's certificate the same echo is answered 00."""
    from protocol import Codec
    from terminal.link import Link, LinkDown

    port = int(mtls_host.ready["iso_port"])

    async def echo(tls: ClientTls) -> dict[str, str]:
        link = Link("127.0.0.1", port, Codec("iso87-ascii"), tls=tls)
        await link.connect()
        try:
            return await link.send_fields(_echo(), 10)
        finally:
            link.close()

    with pytest.raises(LinkDown, match="TLS connection to the host failed.*certificate"):
        run(echo(ClientTls(ca_file=str(module_pki.ca))))
    client = module_pki.client(TID)
    answer = run(echo(ClientTls(str(module_pki.ca), str(client.cert), str(client.key))))
    assert answer["39"] == "00"


def test_sigterm_with_a_tls_client_that_stopped_reading_exits_0(
        module_pki: Pki, tmp_path: Path) -> None:
    """SIGTERM stops a TLS host even while a client that got its answer no longer reads (so
    never returns the TLS close): its connection is aborted after frame_deadline_s, exit 0."""
    config = tmp_path / "host.toml"
    config.write_text("[limits]\nframe_deadline_s = 1\n", encoding="utf-8")
    server = _start(["--db", str(tmp_path / "ledger.db"), "--config", str(config),
                     "--tls-cert", str(module_pki.server.cert),
                     "--tls-key", str(module_pki.server.key)])
    try:
        with TlsIsoClient(int(server.ready["iso_port"]), module_pki.ca) as connection:
            connection.exchange(_echo())  # answered; reads no more
            server.proc.send_signal(signal.SIGTERM)
            try:
                status = server.proc.wait(15)
            except subprocess.TimeoutExpired:  # still waiting for the client's TLS close
                status = server.kill()
            log = server.stderr_tail(50000)
    finally:
        server.stop()
    assert status == 0
    assert '"reason":"stop_abort"' in log
