"""``poslab-host`` as the README starts it, driven by an independent ISO 8583 client.

The client here is pyiso8583 with its own ``default`` spec over a plain blocking socket and a
2-byte length header: nothing of poslab's protocol package builds or reads these frames, so the
host is checked against the common 1987 layout rather than against itself.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import iso8583
import pytest
from iso8583.specs import default as PYISO_DEFAULT

from scenarios.admin import BlockingAdminClient as AdminClient
from scenarios.admin import verify
from scenarios.loadgen.procs import ServerProcess, python_module

TID, MID, PAN = "TERM0001", "MERCHANT0000001", "4111111111111111"
_STANS = count(1)


def _host(db: str) -> ServerProcess:
    argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--db", db]
    return ServerProcess(argv, name="poslab-host")


class IsoClient:
    """A minimal terminal: pyiso8583 default spec, 2-byte big-endian length, one socket."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)

    def send(self, fields: dict[str, str]) -> dict[str, Any]:
        """Send one request; return the decoded answer."""
        raw, _ = iso8583.encode(dict(fields), PYISO_DEFAULT)
        self.sock.sendall(struct.pack("!H", len(raw)) + bytes(raw))
        size = struct.unpack("!H", self._read(2))[0]
        answer, _ = iso8583.decode(self._read(size), PYISO_DEFAULT)
        return answer

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("host closed the connection")
            buf += chunk
        return buf

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


def financial(code: str, amount_minor: int, *, rrn: str | None = None,
              stan: str | None = None, mti: str = "0200") -> dict[str, str]:
    """A request as a plain field dict (DE7 fixed so duplicates are keyed on STAN alone)."""
    fields = {"t": mti, "2": PAN, "3": code, "4": f"{amount_minor:012d}",
              "7": "1127090000", "11": stan or f"{next(_STANS):06d}", "12": "090000",
              "13": "1127", "14": "3012", "22": "051", "25": "00", "41": TID, "42": MID,
              "49": "156"}
    if rrn is not None:
        fields["37"] = rrn
    return fields


@pytest.fixture(scope="module")
def sqlite_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A host subprocess on a fresh SQLite ledger, default config, for the module: each test
    makes sales of its own (fresh STANs) and refunds only those."""
    server = _host(str(tmp_path_factory.mktemp("independent") / "poslab.db"))
    yield server
    assert server.stop() == 0


def test_sale_refunds_void_and_reversal_from_an_independent_client(
        sqlite_host: ServerProcess) -> None:
    """Sale 00, partial refund 00, over-refund 13, void 00, reversal 00: each as documented."""
    client = IsoClient(int(sqlite_host.ready["iso_port"]))
    try:
        sale = client.send(financial("000000", 10000))
        assert sale["39"] == "00" and len(sale["37"]) == 12 and sale["38"]
        refund = client.send(financial("200000", 6000, rrn=sale["37"]))
        assert refund["39"] == "00"
        over = client.send(financial("200000", 5000, rrn=sale["37"]))
        assert (over["39"], over["44"]) == ("13", "REFUND_EXCEEDS_REMAINING")
        other = client.send(financial("000000", 2500))
        void = client.send(financial("020000", 2500, rrn=other["37"]))
        assert void["39"] == "00"
        third = financial("000000", 700)
        assert client.send(third)["39"] == "00"
        reversal = {k: v for k, v in third.items() if k in ("2", "3", "4", "11", "41", "42",
                                                            "49")}
        reversal.update({"t": "0400", "7": "1127090100"})
        answer = client.send(reversal)
        assert answer["t"] == "0410" and answer["39"] == "00"
    finally:
        client.close()
    api = AdminClient(int(sqlite_host.ready["admin_port"]), str(sqlite_host.ready["admin_token"]))
    assert api.fetch(verify()).ok


def race_refunds(ports: list[int], clients: int, amount_minor: int) -> list[str]:
    """Sell 100.00, then refund ``amount_minor`` from ``clients`` connections released at once
    (spread over the hosts at ``ports``); return every response code."""
    seller = IsoClient(ports[0])
    sale = seller.send(financial("000000", 10000))
    seller.close()
    assert sale["39"] == "00"
    barrier = threading.Barrier(clients)
    codes: list[str] = []
    lock = threading.Lock()

    def refund(i: int) -> None:
        client = IsoClient(ports[i % len(ports)])
        request = financial("200000", amount_minor, rrn=sale["37"])
        try:
            barrier.wait()
            code = client.send(request)["39"]
        finally:
            client.close()
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=refund, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(codes) == clients
    return codes


@pytest.mark.parametrize("clients", [8, 16])
def test_concurrent_refunds_from_many_connections_never_exceed_the_sale(
        sqlite_host: ServerProcess, clients: int) -> None:
    """K connections refund 60.00 of one 100.00 sale at once (SQLite): exactly one approval."""
    codes = race_refunds([int(sqlite_host.ready["iso_port"])], clients, 6000)
    assert codes.count("00") == 1 and codes.count("13") == clients - 1


def test_concurrent_refunds_on_postgresql_hosts(pg_url: str, tmp_path: Path) -> None:
    """Two host processes (chains p1 and p2) on one PostgreSQL ledger, 16 connections racing
    refunds of one sale across both: never over 100.00."""
    # Development mode: a merchant no config lists is served by any host, so the two hosts'
    # postings race on the same sale's rows across processes and chains.
    hosts = []
    try:
        for name in ("p1", "p2"):
            config = tmp_path / f"{name}.toml"
            config.write_text(f'[server]\npartition = "{name}"\n[[merchants]]\n'
                              f'id = "MERCHANT0000009"\nterminals = ["TERM0009"]\n')
            argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin",
                    "127.0.0.1:0", "--db", pg_url, "--config", str(config),
                    "--allow-unknown-terminals"]
            hosts.append(ServerProcess(argv, name=f"poslab-host {name}"))
        codes = race_refunds([int(h.ready["iso_port"]) for h in hosts], 16, 3000)
        assert codes.count("00") == 3 and codes.count("13") == 13  # 3 x 30.00 <= 100.00
        api = AdminClient(int(hosts[0].ready["admin_port"]), str(hosts[0].ready["admin_token"]))
        assert api.fetch(verify()).ok
    finally:
        assert [h.stop() for h in hosts] == [0] * len(hosts)


def _partition_config(path: Path, partition: str) -> str:
    """A host config serving ``partition``: MID (TID) in p1, another merchant in p2."""
    path.write_text(f'[server]\npartition = "{partition}"\n'
                    f'[[merchants]]\nid = "{MID}"\nterminals = ["{TID}"]\npartition = "p1"\n'
                    '[[merchants]]\nid = "MERCHANT0000002"\nterminals = ["TERM0002"]\n'
                    'partition = "p2"\n')
    return str(path)


def test_partitioned_hosts_on_postgresql_serve_only_their_merchants(pg_url: str,
                                                                     tmp_path: Path) -> None:
    """Hosts of partitions p1 and p2 on one PostgreSQL ledger: a p1 merchant's sale at p1 is
    approved, its refund at p2 is 03 UNKNOWN_MERCHANT:NOT_HERE, at p1 approved; verify holds."""
    hosts = []
    try:
        for name in ("p1", "p2"):
            argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin",
                    "127.0.0.1:0", "--db", pg_url,
                    "--config", _partition_config(tmp_path / f"{name}.toml", name)]
            hosts.append(ServerProcess(argv, name=f"poslab-host {name}"))
        own, other = (IsoClient(int(h.ready["iso_port"])) for h in hosts)
        try:
            sale = own.send(financial("000000", 10000))
            assert sale["39"] == "00"
            elsewhere = other.send(financial("200000", 4000, rrn=sale["37"]))
            assert (elsewhere["39"], elsewhere["44"]) == ("03", "UNKNOWN_MERCHANT:NOT_HERE")
            assert own.send(financial("200000", 4000, rrn=sale["37"]))["39"] == "00"
        finally:
            own.close()
            other.close()
        api = AdminClient(int(hosts[1].ready["admin_port"]), str(hosts[1].ready["admin_token"]))
        assert api.fetch(verify()).ok
    finally:
        assert [h.stop() for h in hosts] == [0] * len(hosts)
