"""``poslab-host --front-processes 2``: fronts own the ISO sockets, the host process the ledger.

One host subprocess for the module, plus one each for the tests that need their own (a
killed engine; fault rules from a config file). They are driven by a plain socket client with
pyiso8583's own ``default`` spec, so the frames are not built by the code under test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import iso8583
import pytest
from iso8583.specs import default as PYISO_DEFAULT

from scenarios.admin import add_faults, transactions, verify
from scenarios.loadgen.hostctl import MID, admin, start_host
from scenarios.loadgen.procs import ServerProcess

TID, PAN = "FRONT001", "4111111111111111"
_STANS = count(1)


def _children(pid: int) -> set[int]:
    """The live child processes of ``pid`` (the engine's fronts)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                out.add(int(entry.name))
    return out


def _exchange(port: int, fields: dict[str, str]) -> dict[str, Any]:
    """Send one frame on a new connection; return the decoded answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        _send(sock, fields)
        return _next_answer(sock)


def _send(sock: socket.socket, fields: dict[str, str]) -> None:
    raw, _ = iso8583.encode(dict(fields), PYISO_DEFAULT)
    sock.sendall(struct.pack("!H", len(raw)) + bytes(raw))


def _next_answer(sock: socket.socket) -> dict[str, Any]:
    """The next answer on an open connection."""
    size = struct.unpack("!H", _read(sock, 2))[0]
    answer, _ = iso8583.decode(_read(sock, size), PYISO_DEFAULT)
    return answer


def _read(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("host closed the connection")
        buf += chunk
    return buf


def _sale(amount_minor: int = 1500, **changes: str) -> dict[str, str]:
    fields = {"t": "0200", "2": PAN, "3": "000000", "4": f"{amount_minor:012d}",
              "7": "1127090000", "11": f"{next(_STANS):06d}", "12": "090000", "13": "1127",
              "14": "3012", "22": "051", "25": "00", "41": TID, "42": MID, "49": "156"}
    fields.update(changes)
    return fields


pytestmark = pytest.mark.long  # every test here starts an engine and its front processes


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One engine with two fronts on a fresh SQLite ledger."""
    server = start_host(tmp_path_factory.mktemp("fronts") / "ledger.db",
                        extra=["--front-processes", "2"])
    yield server
    assert server.stop() == 0


def _until(condition: Any, what: str, timeout_s: float = 10.0) -> Any:
    """Poll ``condition()`` until it is truthy, at most ``timeout_s``: the only signs of a
    process starting or ending from outside are in /proc (as with a ready file)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)  # polling /proc with a deadline, as ServerProcess polls its ready file
    raise AssertionError(f"never happened within {timeout_s} s: {what}")


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2:].split()[0] == "Z"


def test_sales_are_answered_by_fronts_and_booked_by_the_engine(host: ServerProcess) -> None:
    """Approvals through two fronts are in the engine's ledger, which verifies."""
    port = int(host.ready["iso_port"])
    answers = [_exchange(port, _sale(1000 + i)) for i in range(6)]
    assert [a["39"] for a in answers] == ["00"] * 6
    client = admin(host)
    booked = {t.rrn for t in client.fetch(transactions(tid=TID, limit=100)).transactions}
    assert {a["37"] for a in answers} <= booked
    assert client.fetch(verify()).ok
    assert len(_children(host.pid)) == 2


def test_format_error_is_answered_rc30_books_nothing_and_is_streamed(host: ServerProcess) -> None:
    """A request that breaks the spec gets 0210 RC 30 from the front; nothing is booked; the
    engine's event stream shows the front's answer (conn front<N>), as the one-process host's."""
    port = int(host.ready["iso_port"])
    url = f"http://127.0.0.1:{host.ready['admin_port']}/events"
    auth = {"authorization": f"Bearer {host.ready['admin_token']}"}
    # Nothing else is streamed meanwhile (keepalives come every 15 s): a read that waits 5 s
    # means the event never came.
    with httpx.stream("GET", url, headers=auth, timeout=5) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if line == "event: hello")  # subscribed: the bus records
        answer = _exchange(port, _sale(**{"4": "00000000012A"}))
        streamed = next(event for event in (json.loads(line[len("data: "):]) for line in lines
                                            if line.startswith("data: "))
                        if event.get("type") == "message" and event["stan"] == answer["11"]
                        and event["direction"] == "out")
    assert (answer["t"], answer["39"]) == ("0210", "30")
    assert (streamed["direction"], streamed["mti"], streamed["rc"], streamed["tid"]) == \
        ("out", "0210", "30", TID)
    assert streamed["conn"] in ("front0", "front1") and streamed["fields"]
    stan = answer["11"]
    listed = admin(host).fetch(transactions(tid=TID, stan=stan, limit=10)).transactions
    assert listed == []


def test_a_killed_front_is_replaced_and_the_host_keeps_answering(host: ServerProcess) -> None:
    """kill -9 of one front: the engine starts another; requests are still answered."""
    before = _children(host.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    _until(lambda: len(_children(host.pid) - {victim}) == 2, "a replacement front")
    port = int(host.ready["iso_port"])
    assert [_exchange(port, _sale())["39"] for _ in range(4)] == ["00"] * 4


def test_fronts_exit_when_the_engine_is_killed(tmp_path: Path) -> None:
    """kill -9 of the engine: its fronts go too, so nothing holds the port unanswered."""
    server = start_host(tmp_path / "ledger.db", extra=["--front-processes", "1"])
    fronts = _until(lambda: _children(server.pid), "the front started")
    server.kill()
    server.close()
    for pid in fronts:
        _until(lambda pid=pid: _gone(pid), f"front {pid} exits after its engine")


def test_fault_rules_from_config_and_admin_api_work_with_fronts(tmp_path: Path) -> None:
    """With a front process, a [[faults]] rule from the config file and rules posted to /faults
    force a code, lose a booked approval's answer, close, and count exactly once."""
    config = tmp_path / "host.toml"
    config.write_text('[[faults]]\nid = "from-config"\ntid = "FCFG0001"\naction = "respond"\n'
                      'process = false\nresponse_code = "96"\n')
    server = start_host(tmp_path / "ledger.db",
                        extra=["--config", str(config), "--front-processes", "1"])
    try:
        port, client = int(server.ready["iso_port"]), admin(server)
        client.fetch(add_faults([
            {"id": "forced", "tid": "FFRC0001", "action": "respond", "process": False,
             "response_code": "91", "count": 2},
            {"id": "lost", "tid": "FDRP0001", "action": "drop", "process": True, "count": 1},
            {"id": "cut", "tid": "FCLS0001", "action": "close", "process": False}]))

        def booked(tid: str) -> list[str]:
            return [t.stan for t in client.fetch(transactions(tid=tid, limit=10)).transactions]

        configured = _exchange(port, _sale(**{"41": "FCFG0001"}))
        assert (configured["39"], configured["44"]) == ("96", "FORCED")
        forced = _exchange(port, _sale(**{"41": "FFRC0001"}))
        assert (forced["39"], forced["44"]) == ("91", "FORCED")
        assert booked("FCFG0001") == booked("FFRC0001") == []  # process: false books nothing

        # Answers leave a connection in request order: the second sale's answer coming first
        # proves the first one's was dropped, although its sale was booked (process: true).
        lost, kept = _sale(**{"41": "FDRP0001"}), _sale(**{"41": "FDRP0001"})
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            _send(sock, lost)
            _send(sock, kept)
            answer = _next_answer(sock)
        assert (answer["11"], answer["39"]) == (kept["11"], "00")  # count 1: fired once
        assert sorted(booked("FDRP0001")) == sorted([lost["11"], kept["11"]])

        with pytest.raises(ConnectionError):  # closed (reset) without an answer
            _exchange(port, _sale(**{"41": "FCLS0001"}))
        assert booked("FCLS0001") == []

        rules = {r["id"]: r for r in client.get("/faults")["faults"]}
        assert {k: (r["applied"], r.get("remaining")) for k, r in rules.items()} == {
            "from-config": (1, None), "forced": (1, 1), "lost": (1, 0), "cut": (1, None)}
        assert 'poslab_faults_applied_total{action="drop",fault="lost"} 1' in \
            client.get("/metrics")
    finally:
        assert server.stop() == 0


def _metric(text: str, series: str) -> float:
    """One series' value in a /metrics scrape (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_connection_caps_and_metrics_hold_for_the_whole_host_with_two_fronts(
        tmp_path: Path) -> None:
    """[limits] over two fronts: the total and per-peer caps refuse whichever front accepts,
    a closed connection frees its slot, and /metrics counts the opens, refusals, a front's
    own close and its RC 30 answer, as the one-process host would."""
    config = tmp_path / "host.toml"
    config.write_text("[limits]\nmax_connections = 3\nmax_connections_per_peer = 2\n")
    server = start_host(tmp_path / "ledger.db",
                        extra=["--config", str(config), "--front-processes", "2"])
    port, client = int(server.ready["iso_port"]), admin(server)

    def connect(source: str) -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=20,
                                        source_address=(source, 0))

    def admitted(source: str) -> socket.socket:
        sock = connect(source)
        _send(sock, _sale())
        assert _next_answer(sock)["39"] == "00"
        return sock

    def refused(source: str) -> None:
        with pytest.raises(ConnectionError), connect(source) as sock:
            _send(sock, _sale())
            _next_answer(sock)

    try:
        first, second = admitted("127.0.0.1"), admitted("127.0.0.1")
        for _ in range(4):  # the kernel picks the front: several tries reach both
            refused("127.0.0.1")  # over the peer's cap of 2
        other = admitted("127.0.0.2")
        for _ in range(4):
            refused("127.0.0.2")  # over the host's cap of 3
        first.close()
        _until(lambda: _metric(client.get("/metrics"), "poslab_open_connections") == 2,
               "the closed connection's slot is free")
        third = connect("127.0.0.1")
        _send(third, _sale(**{"4": "00000000012A"}))
        assert _next_answer(third)["39"] == "30"  # answered by a front
        other.sendall(b"\xff\xff")  # a length over max_frame_bytes: the front closes
        expected = {"poslab_connections_total": 4, "poslab_open_connections": 2,
                    'poslab_connections_closed_total{reason="over_peer_limit"}': 4,
                    'poslab_connections_closed_total{reason="over_limit"}': 4,
                    'poslab_connections_closed_total{reason="framing"}': 1,
                    'poslab_requests_total{mti="0200",rc="30"}': 1,
                    'poslab_requests_total{mti="0200",rc="00"}': 3}

        def counted() -> dict[str, float]:
            text = client.get("/metrics")
            return {series: _metric(text, series) for series in expected}

        _until(lambda: counted() == expected, f"/metrics shows {expected}")
        for sock in (second, third, other):
            sock.close()
    finally:
        assert server.stop() == 0
