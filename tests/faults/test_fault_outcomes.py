"""Each fault action against a real host, with the outcome a correct terminal reaches.

One host subprocess for the module (its own SQLite ledger); each test uses its own terminal id
and installs its rule through ``POST /faults``. After each test the ledger must verify clean.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from protocol.admin_models import TxnSummary
from scenarios.admin import AdminCallError, add_faults, clear_faults, faults, verify
from scenarios.admin import BlockingAdminClient as AdminClient
from scenarios.loadgen.hostctl import MID, admin, host_transactions, is_effective, start_host
from scenarios.loadgen.journal import JournalingTerminal
from scenarios.loadgen.procs import ServerProcess

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")

_TIDS = (f"FT{i:06d}" for i in itertools.count(1))


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_host(tmp_path_factory.mktemp("faults") / "ledger.db")
    yield server
    server.stop()


@pytest.fixture
def client(host: ServerProcess) -> Iterator[AdminClient]:
    c = admin(host)
    yield c
    c.fetch(clear_faults())
    assert c.fetch(verify()).ok


def terminal(host: ServerProcess, timeout: float = 1.0) -> JournalingTerminal:
    return JournalingTerminal("127.0.0.1", int(host.ready["iso_port"]), next(_TIDS), MID,
                              timeout=timeout)


def effective_sales(client: AdminClient, tid: str) -> list[TxnSummary]:
    return [t for t in host_transactions(client, tid) if t.kind == "sale" and is_effective(t)]


def add_fault(client: AdminClient, tid: str, **rule: object) -> None:
    client.fetch(add_faults({"tid": tid, "mti": "0200", "count": 1, **rule}))


def test_dropped_approval_is_reversed_and_nets_to_zero(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """drop + process: the sale is booked, no answer; the terminal reverses; net effect 0."""
    term = terminal(host, timeout=0.5)
    add_fault(client, term.tid, action="drop", process=True)
    entry = run(term.sale(1234))
    assert entry.state == "in_flight" and term.counters.timeouts == 1
    assert len(effective_sales(client, term.tid)) == 1  # approved but the answer was lost
    assert run(term.resolve(entry, "reverse"))
    assert entry.state == "reversed"
    assert effective_sales(client, term.tid) == []


def test_request_that_never_arrived_reversal_leaves_nothing(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """drop without processing: nothing booked; the reversal is answered 00 and books nothing."""
    term = terminal(host, timeout=0.5)
    add_fault(client, term.tid, action="drop", process=False)
    entry = run(term.sale(2000))
    assert entry.state == "in_flight"
    assert effective_sales(client, term.tid) == []
    assert run(term.resolve(entry, "reverse"))
    assert effective_sales(client, term.tid) == []


@pytest.mark.parametrize("process", [True, False])
def test_closed_connection_then_repeat_books_exactly_once(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any], process: bool) -> None:
    """close before/after processing: the repeat is approved and exactly one sale is effective."""
    term = terminal(host)
    add_fault(client, term.tid, action="close", process=process)
    entry = run(term.sale(3000))
    assert entry.state == "in_flight" and term.counters.connection_errors == 1
    assert len(effective_sales(client, term.tid)) == (1 if process else 0)
    assert run(term.resolve(entry, "repeat"))
    assert entry.state == "approved"
    assert len(effective_sales(client, term.tid)) == 1


def test_delayed_answer_arrives_late_but_intact(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """delay 300 ms: the approval arrives after at least 300 ms and is booked once."""
    term = terminal(host, timeout=3.0)
    add_fault(client, term.tid, action="delay", process=True, delay_ms=300)
    started = time.monotonic()
    entry = run(term.sale(4000))
    assert time.monotonic() - started >= 0.3
    assert entry.state == "approved"
    assert len(effective_sales(client, term.tid)) == 1


def test_forced_code_declines_without_booking(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """respond 91 without processing: the terminal sees 91 (DE44 FORCED); nothing is booked."""
    term = terminal(host)
    add_fault(client, term.tid, action="respond", process=False, response_code="91")
    entry = run(term.sale(5000))
    assert (entry.state, entry.rc) == ("declined", "91")
    assert effective_sales(client, term.tid) == []


def test_garbled_answer_is_a_clear_error_and_reversal_nets_zero(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """garble after processing: the terminal counts a garbled frame, reverses; net effect 0."""
    term = terminal(host)
    add_fault(client, term.tid, action="garble", process=True)
    entry = run(term.sale(6000))
    assert entry.state == "in_flight" and term.counters.garbled == 1
    assert run(term.resolve(entry, "reverse"))
    assert effective_sales(client, term.tid) == []


def test_duplicate_answer_is_ignored(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """duplicate: the terminal takes the first answer, ignores the copy; one sale booked."""
    term = terminal(host)
    add_fault(client, term.tid, action="duplicate", process=True)
    first = run(term.sale(7000))
    second = run(term.sale(7001))
    assert first.state == second.state == "approved"
    assert term.counters.unsolicited == 1
    assert len(effective_sales(client, term.tid)) == 2


def test_faults_are_listed_counted_and_validated(
        host: ServerProcess, client: AdminClient, run: Callable[..., Any]) -> None:
    """/faults lists rules with counters, /metrics counts them, a bad rule is a 400 naming it."""
    term = terminal(host)
    client.fetch(add_faults({"id": "slow", "tid": term.tid, "action": "delay", "process": True,
                             "delay_ms": 1}))
    run(term.sale(100))
    [rule] = client.fetch(faults()).faults
    assert (rule.id, rule.applied) == ("slow", 1)
    assert 'poslab_faults_applied_total{action="delay",fault="slow"} 1' in client.get("/metrics")
    with pytest.raises(AdminCallError) as info:
        client.fetch(add_faults({"action": "delay", "process": True}))
    assert info.value.status == 400 and "delay_ms" in info.value.message
