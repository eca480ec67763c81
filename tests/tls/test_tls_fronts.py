"""``[tls.iso]`` with front processes: each front terminates TLS as the one-process host does.

The host is a real ``poslab-host --front-processes 1`` with mutual TLS and
``tid_in_certificate``; its client is the standard library's ``ssl`` with pyiso8583 and the
spec written below, so no frame is built by the code under test. The certificates come from
the throw-away CA of tests/tls.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import iso8583
import msgspec
import pytest
from tls_iso_client import TlsIsoClient
from tls_pki import Pki

from scenarios.admin import BlockingAdminClient
from scenarios.loadgen.procs import ServerProcess, python_module

TID, MID = "TERM0001", "MERCHANT0000001"


def _field(max_len: int, len_type: int = 0, data_enc: str = "ascii") -> dict[str, Any]:
    return {"data_enc": data_enc, "len_enc": "ascii", "len_type": len_type,
            "max_len": max_len, "desc": ""}


# The ISO 8583:1987 layout of the fields a sale and its answer carry (ASCII, binary bitmap).
SPEC: dict[str, Any] = {
    "h": _field(0), "t": _field(4), "p": _field(8, data_enc="b"), "1": _field(8, data_enc="b"),
    "2": _field(19, 2), "3": _field(6), "4": _field(12), "7": _field(10), "11": _field(6),
    "12": _field(6), "13": _field(4), "14": _field(4), "15": _field(4), "22": _field(3),
    "25": _field(2), "37": _field(12), "38": _field(6), "39": _field(2), "41": _field(8),
    "42": _field(15), "44": _field(25, 2), "49": _field(3),
}


def _sale(stan: int) -> dict[str, str]:
    return {"t": "0200", "2": "4111111111111111", "3": "000000", "4": "000000001234",
            "7": "1127090000", "11": f"{stan:06d}", "12": "090000", "13": "1127",
            "14": "3012", "22": "051", "25": "00", "41": TID, "42": MID, "49": "156"}


def _booked(server: ServerProcess, stan: str) -> list[dict[str, Any]]:
    """The host's transactions of terminal TID with ``stan``."""
    page = _admin(server).get(f"/transactions?tid={TID}&limit=1000")
    return [t for t in page["transactions"] if t.get("stan") == stan]


def _plain_tcp_reply(port: int, fields: dict[str, str]) -> bytes:
    """What the host sends back to a frame sent without TLS, until it closes."""
    body, _ = iso8583.encode(dict(fields), SPEC)
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(struct.pack("!H", len(body)) + bytes(body))
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


@pytest.mark.long
def test_mutual_tls_and_tid_binding_hold_in_a_front_process(pki: Pki, tmp_path: Path) -> None:
    """Through a front: a sale over mTLS is approved and booked, a certificate of another TID
    gets 58 and books nothing on a connection that stays open (both on the engine's event
    stream and /metrics), no certificate fails the handshake, plain TCP gets no answer, and
    SIGTERM aborts a TLS client that stopped reading."""
    config = tmp_path / "host.toml"
    config.write_text("[limits]\nframe_deadline_s = 1\n", encoding="utf-8")
    server = ServerProcess([
        *python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
        "--db", str(tmp_path / "ledger.db"), "--config", str(config), "--front-processes", "1",
        "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
        "--tls-client-ca", str(pki.ca), "--tls-require-client-cert", "--tls-tid-in-cert"],
        name="poslab-host")
    try:
        port = int(server.ready["iso_port"])
        with TlsIsoClient(port, pki.ca, pki.client(TID), SPEC) as terminal:
            approved = terminal.exchange(_sale(1))
        assert (approved["t"], approved["39"], approved["11"]) == ("0210", "00", "000001")
        assert [t["amount_minor"] for t in _booked(server, "000001")] == [1234]

        with _events(server) as streamed, \
                TlsIsoClient(port, pki.ca, pki.client("TERM0002"), SPEC) as other:
            refusals = [other.exchange(_sale(2)) for _ in range(2)]  # the connection stays open
            # The front's tally brings its refusals to the engine's stream and /metrics at once.
            seen = [next(streamed) for _ in range(4)]
        assert [(a["39"], a.get("44")) for a in refusals] == [("58", "CERT_TID_MISMATCH")] * 2
        assert [(e["direction"], e["rc"], e["tid"]) for e in seen] == \
            [("in", None, TID), ("out", "58", TID)] * 2
        assert _booked(server, "000002") == []
        assert 'poslab_requests_total{mti="0200",rc="58"} 2.0' in _admin(server).get(
            "/metrics").splitlines()

        with pytest.raises((ssl.SSLError, ConnectionError)):
            TlsIsoClient(port, pki.ca, spec=SPEC).exchange(_sale(3))
        reply = _plain_tcp_reply(port, _sale(4))
        assert b"0210" not in reply and b"4111111111111111" not in reply
        assert _booked(server, "000003") == [] and _booked(server, "000004") == []

        with TlsIsoClient(port, pki.ca, pki.client(TID), SPEC) as silent:
            silent.exchange(_sale(5))  # answered; it reads no more, so never returns the close
            server.proc.send_signal(signal.SIGTERM)
            try:
                status = server.proc.wait(15)
            except subprocess.TimeoutExpired:
                status = server.kill()
        log = server.stderr_tail(100000)
    finally:
        server.stop()
    assert status == 0
    assert '"tls_tid_mismatch"' in log and '"tls_handshake_failed"' in log
    assert '"reason":"stop_abort"' in log


@contextmanager
def _events(server: ServerProcess) -> Iterator[Iterator[dict[str, Any]]]:
    """The message events of the host's /events stream, from the moment it is subscribed (a
    read waits at most 5 s: nothing else is streamed meanwhile, keepalives come every 15 s)."""
    url = f"http://127.0.0.1:{server.ready['admin_port']}/events"
    auth = {"authorization": f"Bearer {server.ready['admin_token']}"}
    with httpx.stream("GET", url, headers=auth, timeout=5) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line == "event: hello")  # subscribed: the bus records
        yield (event for event in (json.loads(line[len("data: "):]) for line in lines
                                   if line.startswith("data: "))
               if event.get("type") == "message")


def _admin(server: ServerProcess) -> BlockingAdminClient:
    """The host's admin API."""
    return BlockingAdminClient(int(server.ready["admin_port"]), str(server.ready["admin_token"]))


def test_a_connection_refused_its_slot_is_closed_before_tls_without_a_handshake_line(
        pki: Pki) -> None:
    """A front closes a TLS connection the engine refused with the refusal's close line only,
    as the one-process host (which never wraps it) does; a client leaving mid-handshake still
    logs tls_handshake_failed."""
    import io

    from twisted.internet.address import IPv4Address
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    from host.front.link import Grant, frame
    from host.front.process import EngineLink, FrontFactory, FrontTls
    from host.logs import MessageLog
    from host.server import ServerLimits
    from host.tls import TlsServerFactory, server_options
    from protocol import Codec

    out, clock = io.StringIO(), Clock()
    log = MessageLog(out)
    factory = FrontFactory(Codec("iso87-ascii"), ServerLimits(), log, clock)  # type: ignore[arg-type]
    factory.link = link = EngineLink(factory, clock, port=None)
    link.makeConnection(StringTransport())
    tls = TlsServerFactory(server_options(FrontTls(str(pki.server.cert), str(pki.server.key)),
                                          "[tls.iso]"), factory, log, "ISO 8583")
    for refused, port in (("over_peer_limit", 5001), (None, 5002)):
        wrapper = tls.buildProtocol(IPv4Address("TCP", "10.0.0.9", port))
        wrapper.makeConnection(StringTransport())
        link.dataReceived(frame(Grant(wrapper.wrappedProtocol.conn_id, refused)))
        wrapper.connectionLost(Failure(ConnectionError("gone")))
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["event"], line.get("reason")) for line in lines
            if line["event"] in ("close", "tls_handshake_failed")] == \
        [("close", "over_peer_limit"), ("tls_handshake_failed", None)]


def test_a_front_that_cannot_read_its_key_says_why_in_one_line(pki: Pki, tmp_path: Path) -> None:
    """A front whose TLS key cannot be read sends the engine one Failed line naming the file,
    worded as the one-process host words it, and exits 2 without a traceback."""
    from host.front.link import Deframer, Failed, LinkMessage
    from host.front.process import FrontSettings, FrontTls

    missing = tmp_path / "gone.key"
    settings = FrontSettings(index=0, profile="iso87-ascii", family=int(socket.AF_INET),
                             limits={}, tls=FrontTls(str(pki.server.cert), str(missing)))
    done = subprocess.run([sys.executable, "-m", "host.front",
                           msgspec.json.encode(settings).decode()],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    said: list[LinkMessage] = []
    Deframer(said.append).feed(done.stdout)
    assert done.returncode == 2
    assert said == [Failed(f"[tls.iso] server key {missing}: cannot read the file "
                           "(No such file or directory)")]
    assert b"Traceback" not in done.stderr


class _SpawnRecorder:
    """A reactor that records the processes it is asked to spawn and starts none."""

    def __init__(self) -> None:
        self.spawned: list[Any] = []

    def spawnProcess(self, protocol: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N802
        self.spawned.append(protocol)


def test_the_engine_ends_its_start_with_the_line_a_front_failed_with() -> None:
    """The engine's start of its fronts fails with the reason a front sent in Failed, so the
    host's start error is that one line, not "see its stderr"."""
    from twisted.internet.defer import FirstError
    from twisted.internet.error import ProcessTerminated
    from twisted.python.failure import Failure

    from host.front.engine import FrontPool, bind_listener
    from host.front.link import Failed, frame
    from host.front.process import FrontSettings
    from host.logs import MessageLog
    from protocol import Codec

    reactor = _SpawnRecorder()
    listener = bind_listener("127.0.0.1", 0)
    settings = FrontSettings(index=0, profile="iso87-ascii", family=int(listener.family),
                             limits={})
    pool = FrontPool(reactor, 1, listener, settings, None, None,  # type: ignore[arg-type]
                     Codec("iso87-ascii"), MessageLog(), None, None)  # type: ignore[arg-type]
    outcome: list[Any] = []
    pool.start().addBoth(outcome.append)
    pool.stopping = True  # as the runtime's stop does: the front is not started again
    listener.close()
    (channel,) = reactor.spawned
    line = "[tls.iso] server key /nowhere.key: cannot read the file (No such file or directory)"
    channel.childDataReceived(1, frame(Failed(line)))
    channel.processEnded(Failure(ProcessTerminated(exitCode=2)))
    (failure,) = outcome
    assert failure.check(FirstError) and failure.value.subFailure.getErrorMessage() == line
