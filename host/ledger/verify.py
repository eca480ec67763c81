"""Invariant checks over a whole ledger database (docs/design-notes.md, "Ledger invariants").

Each check returns violations as ``{"invariant": "I1", "detail": "..."}`` naming the group,
account or key concerned, so a person can find the row. Checks:

``I1``  every group balanced (debits = credits > 0), entries in the group's currency, and the
        group's ``amount_minor`` equal to its debits
``I2``  per currency, all debits = all credits (catches entries outside any group)
``I5``  each idempotency key recorded once (plus any extra checks the caller adds)
``I7``  each group reversed by at most one effective group, and that one an exact mirror
``I9``  groups drawing on a parent (refunds on their sale) never exceed it: the effective
        children sum to at most the parent's amount, and to 0 when the parent is not effective
``CHAIN``  every group's ``prev_hash`` is its predecessor's hash and its ``hash`` recomputes

Extra checks (e.g. the transaction store's) are callables ``(conn) -> list[violation]``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, case, func, select

from host.ledger.book import Group, group_hash
from host.ledger.db import open_engine
from host.ledger.schema import GENESIS_HASH, ledger_entry, posting_group, request_log

Violation = dict[str, str]
ExtraCheck = Callable[[Connection], list[Violation]]


def _v(invariant: str, detail: str) -> Violation:
    return {"invariant": invariant, "detail": detail}


def verify_connection(conn: Connection,
                      extra_checks: Iterable[ExtraCheck] = ()) -> dict[str, Any]:
    """Run every check on an open connection; the report shape of ``HostService.verify()``."""
    groups = [Group(int(r.id), r.kind, r.reference,
                    None if r.reverses is None else int(r.reverses),
                    None if r.parent_id is None else int(r.parent_id),
                    r.currency, int(r.amount_minor), int(r.at_ms), r.memo)
              for r in conn.execute(select(posting_group).order_by(posting_group.c.id)).all()]
    hashes = {int(r.id): (r.prev_hash, r.hash) for r in
              conn.execute(select(posting_group.c.id, posting_group.c.prev_hash,
                                  posting_group.c.hash)).all()}
    entries: dict[int, list[tuple[str, str, int, str]]] = defaultdict(list)
    orphan = 0
    known = {g.id for g in groups}
    for r in conn.execute(select(ledger_entry).order_by(ledger_entry.c.id)).all():
        entries[int(r.group_id)].append((r.account, r.side, int(r.amount_minor), r.currency))
        orphan += int(r.group_id) not in known
    checks = list(extra_checks)
    violations: list[Violation] = []
    violations += _balanced(groups, entries)
    violations += _conservation(conn)
    violations += _keys(conn)
    effective = _effective(groups)
    violations += _reversals(groups, entries, effective)
    violations += _draws(groups, effective)
    violations += _chain(groups, entries, hashes)
    for check in checks:
        violations += check(conn)
    return {
        "ok": not violations,
        "violations": violations,
        "checked": {"groups": len(groups), "entries": sum(len(v) for v in entries.values()),
                    "orphan_entries": orphan, "extra_checks": len(checks)},
    }


def verify_database(db_url: str, extra_checks: Iterable[ExtraCheck] = ()) -> dict[str, Any]:
    """Open ``db_url`` (path or URL), run every check, close; see :func:`verify_connection`.

    Without ``extra_checks`` this also runs the transaction store's checks when the database
    has its tables (``host.store.store_checks``), so ``poslab-host ledger verify`` sees all.
    """
    engine = open_engine(db_url)
    try:
        checks = list(extra_checks)
        if not checks:
            checks = _store_checks()
        with engine.connect() as conn:
            report = verify_connection(conn, checks)
            conn.rollback()
        return report
    finally:
        engine.dispose()


def _store_checks() -> list[ExtraCheck]:
    # The store builds on the ledger, not the other way round: look its checks up lazily and
    # only by name, so the ledger stays importable (and verifiable) on its own.
    import importlib

    try:
        store = importlib.import_module("host.store")
    except ImportError:  # pragma: no cover - the ledger used without the host
        return []
    found: list[ExtraCheck] = list(getattr(store, "STORE_CHECKS", []))
    return found


def _balanced(groups: list[Group], entries: dict[int, list[tuple[str, str, int, str]]]
              ) -> list[Violation]:
    out = []
    by_id = {g.id: g for g in groups}
    for gid in sorted(set(entries) | set(by_id)):
        rows = entries.get(gid, [])
        g = by_id.get(gid)
        if g is None:
            out.append(_v("I1", f"entries reference posting group {gid}, which does not exist"))
            continue
        debit = sum(m for _, s, m, _ in rows if s == "D")
        credit = sum(m for _, s, m, _ in rows if s == "C")
        if not rows or debit != credit or debit <= 0:
            out.append(_v("I1", f"group {gid} ({g.kind} {g.reference}) is unbalanced: "
                                f"debits {debit} {g.currency}, credits {credit}"))
        if any(m <= 0 for _, _, m, _ in rows):
            out.append(_v("I1", f"group {gid} has an entry with a non-positive amount"))
        currencies = {c for *_, c in rows}
        if currencies - {g.currency}:
            out.append(_v("I1", f"group {gid} mixes currencies {sorted(currencies)} "
                                f"(group currency {g.currency})"))
        if rows and debit != g.amount_minor:
            out.append(_v("I1", f"group {gid} records amount {g.amount_minor} but its debits "
                                f"are {debit}"))
    return out


def _conservation(conn: Connection) -> list[Violation]:
    signed = func.sum(ledger_entry.c.amount_minor * _side_sign())
    rows = conn.execute(select(ledger_entry.c.currency, signed)
                        .group_by(ledger_entry.c.currency)).all()
    return [_v("I2", f"{cur}: debits minus credits over all entries is {int(total)}, not 0")
            for cur, total in rows if int(total or 0) != 0]


def _side_sign() -> Any:
    return case((ledger_entry.c.side == "D", 1), else_=-1)


def _keys(conn: Connection) -> list[Violation]:
    rows = conn.execute(select(request_log.c.key, func.count()).group_by(request_log.c.key)
                        .having(func.count() > 1)).all()
    return [_v("I5", f"request key {k!r} recorded {n} times") for k, n in rows]


def _effective(groups: list[Group]) -> dict[int, bool]:
    reversers: dict[int, list[int]] = defaultdict(list)
    for g in groups:
        if g.reverses is not None:
            reversers[g.reverses].append(g.id)
    eff: dict[int, bool] = {}
    for g in sorted(groups, key=lambda g: -g.id):  # a reversal always comes after its target
        eff[g.id] = not any(eff.get(r, True) for r in reversers[g.id])
    return eff


def _reversals(groups: list[Group], entries: dict[int, list[tuple[str, str, int, str]]],
               effective: dict[int, bool]) -> list[Violation]:
    out = []
    by_target: dict[int, list[Group]] = defaultdict(list)
    for g in groups:
        if g.reverses is not None:
            by_target[g.reverses].append(g)
    for target, revs in by_target.items():
        live = [r for r in revs if effective[r.id]]
        if len(live) > 1:
            out.append(_v("I7", f"group {target} is reversed {len(live)} times by effective "
                                f"groups {[r.id for r in live]}"))
        want = sorted((a, "C" if s == "D" else "D", m, c) for a, s, m, c in entries[target])
        for r in revs:
            if sorted(entries[r.id]) != want:
                out.append(_v("I7", f"group {r.id} reverses group {target} but is not its "
                                    f"exact mirror"))
    return out


def _draws(groups: list[Group], effective: dict[int, bool]) -> list[Violation]:
    out = []
    by_id = {g.id: g for g in groups}
    drawn: dict[int, int] = defaultdict(int)
    for g in groups:
        if g.parent_id is not None and effective[g.id]:
            drawn[g.parent_id] += g.amount_minor
    for pid, total in drawn.items():
        parent = by_id.get(pid)
        limit = parent.amount_minor if parent is not None and effective[pid] else 0
        if total > limit:
            what = "not effective" if parent is not None and not effective[pid] else \
                f"{limit} {parent.currency}" if parent is not None else "missing"
            out.append(_v("I9", f"group {pid} ({parent.reference if parent else '?'}) has "
                                f"effective draws (refunds) of {total}, above its {what}"))
    return out


def _chain(groups: list[Group], entries: dict[int, list[tuple[str, str, int, str]]],
           hashes: dict[int, tuple[str, str]]) -> list[Violation]:
    out = []
    prev = GENESIS_HASH
    expected_id = 1
    for g in groups:
        stored_prev, stored = hashes[g.id]
        if g.id != expected_id:
            out.append(_v("CHAIN", f"group ids jump from {expected_id - 1} to {g.id}: "
                                   f"groups are missing"))
        if stored_prev != prev:
            out.append(_v("CHAIN", f"group {g.id} links to {stored_prev[:12]}... but its "
                                   f"predecessor's hash is {prev[:12]}..."))
        recomputed = group_hash(stored_prev, g, [(a, s, m) for a, s, m, _ in entries[g.id]])
        if recomputed != stored:
            out.append(_v("CHAIN", f"group {g.id} ({g.kind} {g.reference}) was altered: its "
                                   f"content no longer matches its hash"))
        prev = stored
        expected_id = g.id + 1
    return out
