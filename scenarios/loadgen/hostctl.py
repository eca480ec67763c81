"""Control a ``poslab-host`` subprocess for soak, crash and fault runs: start it on a given
ledger, reach its admin API, and reconcile terminal journals with what its ledger says."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from protocol.admin_models import TxnSummary
from scenarios.admin import BlockingAdminClient, transactions
from scenarios.loadgen.journal import JournalingTerminal
from scenarios.loadgen.procs import ServerProcess, python_module

PAGE = 1000
"""Rows asked per ``GET /transactions`` page (the host's largest page)."""

MID = "BENCHMERCHANT01"
"""The merchant id the bench and crash tools use (enrolled by --allow-unknown-terminals)."""


def start_host(db: Path | str, *, env: dict[str, str] | None = None, log: Path | None = None,
               extra: Iterable[str] = ()) -> ServerProcess:
    """``poslab-host`` on port 0 with ``db`` (SQLite path or database URL) as its ledger;
    returns once it listens. The URL goes to the host as one argv item, never via a shell."""
    argv = [*python_module("host"), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--db", str(db), "--allow-unknown-terminals", *extra]
    if log is not None:
        argv += ["--log-file", str(log)]
    full_env = dict(os.environ)
    full_env.pop("POSLAB_CRASHPOINT", None)
    full_env.pop("POSLAB_CRASHPOINT_SKIP", None)
    full_env.update(env or {})
    return ServerProcess(argv, name="poslab-host", env=full_env)


def admin(server: ServerProcess) -> BlockingAdminClient:
    """The admin client of a started host."""
    return BlockingAdminClient(int(server.ready["admin_port"]), str(server.ready["admin_token"]))


def host_transactions(client: BlockingAdminClient, tid: str) -> list[TxnSummary]:
    """Every transaction the host recorded for ``tid``, newest first, page by page
    (``GET /transactions`` with its ``next`` cursor)."""
    out: list[TxnSummary] = []
    cursor: str | None = None
    while True:
        page = client.fetch(transactions(tid=tid, limit=PAGE, cursor=cursor))
        out += page.transactions
        cursor = page.next
        if cursor is None:
            return out


def is_effective(txn: TxnSummary) -> bool:
    """True when the host counts the transaction as money moved (approved, not reversed)."""
    return txn.state in {"effective", "approved", "pending_review"}


def reconcile(terminal: JournalingTerminal, txns: list[TxnSummary]) -> list[str]:
    """Problems between one terminal's journal and the host's view (empty = consistent).

    Terminal approved (not reversed) -> exactly one effective sale for that STAN;
    declined or reversed -> no effective sale for it. Nothing may be left in flight.
    """
    problems = []
    by_stan: dict[str, list[TxnSummary]] = {}
    for txn in txns:
        if txn.kind == "sale":
            by_stan.setdefault(txn.stan, []).append(txn)
    for entry in terminal.journal:
        effective = [t for t in by_stan.get(entry.stan, []) if is_effective(t)]
        if entry.state == "in_flight":
            problems.append(f"{terminal.tid} {entry.stan}: still in flight")
        elif entry.state == "approved" and len(effective) != 1:
            problems.append(f"{terminal.tid} {entry.stan}: approved at the terminal, "
                            f"{len(effective)} effective at the host (approved-but-missing)")
        elif entry.state in ("declined", "reversed") and effective:
            problems.append(f"{terminal.tid} {entry.stan}: {entry.state} at the terminal, "
                            f"effective at the host")
    return problems


def terminal_problems(client: BlockingAdminClient, terminal: JournalingTerminal) -> list[str]:
    """:func:`reconcile` one terminal against the host it talks to."""
    return reconcile(terminal, host_transactions(client, terminal.tid))
