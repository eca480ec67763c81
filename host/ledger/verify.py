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
``KEY``    the ledger was written with the chain key verify was given (else nothing else is
           checked: every hash would fail and say nothing useful)
``REGISTRY``, ``HEAD``, ``CHAIN``  every chain (:mod:`host.ledger.chains`) is registered and
           whole: its head's MAC holds and matches its last group, its ids run without a gap,
           its groups link and recompute under the chain key (:mod:`host.ledger.verify_chains`;
           each detail names the chain). Deleting the newest groups and winding the head back,
           or deleting a chain whole, shows here.
``REQUEST``  every stored reply (``request_log`` row) still carries its MAC
``ANCHOR`` (when given) the chain still holds the anchored hash at the anchored position

The balance and invariant checks (I1 ... I9) run over the groups of every chain together.
Extra checks (e.g. the transaction store's) are callables ``(conn) -> list[violation]``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, case, func, select

from host.ledger.anchor import Anchor
from host.ledger.book import Group, request_mac
from host.ledger.chain import ChainKey, ChainKeyError, key_path, read_key
from host.ledger.chains import MAIN, MAIN_CHAIN, head_mac
from host.ledger.db import open_engine
from host.ledger.schema import (
    GENESIS_HASH,
    check_schema_version,
    ledger_entry,
    posting_group,
    request_log,
)
from host.ledger.verify_chains import check_chains, group_chains, has_chains, head_rows

Violation = dict[str, str]
ExtraCheck = Callable[[Connection], list[Violation]]


def _v(invariant: str, detail: str) -> Violation:
    return {"invariant": invariant, "detail": detail}


def verify_connection(conn: Connection, key: ChainKey,
                      extra_checks: Iterable[ExtraCheck] = (),
                      anchor: Anchor | Sequence[Anchor] | None = None) -> dict[str, Any]:
    """Run every check on an open connection; the report shape of ``HostService.verify()``.

    ``anchor``: one anchor, or several (one per chain, as a settlement report lists them);
    each must still be in the ledger.

    Raises :class:`~host.ledger.schema.SchemaVersionError` on a ledger from before the keyed
    chain."""
    check_schema_version(conn)
    chains = has_chains(conn)
    heads = head_rows(conn, chains)
    if not heads or not key.adopt(heads[0].key_check):
        why = ("the ledger has no head row" if not heads else
               f"the ledger was written with a different chain key than the one in {key.path}"
               f"; no hash can be checked with this key")
        return {"ok": False, "violations": [_v("KEY", why)],
                "checked": {"groups": 0, "entries": 0}}
    groups = read_groups(conn)
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
    entry_count = sum(len(v) for v in entries.values())
    violations += check_chains(conn, key, heads, groups, group_chains(conn, chains), entries,
                               hashes, chains)
    anchors = (anchor,) if isinstance(anchor, Anchor) else tuple(anchor or ())
    for one in anchors:
        violations += _anchor(one, hashes)
    violations += _balanced(groups, entries)
    violations += _conservation(conn)
    violations += _keys(conn)
    requests = _requests(conn, key, violations)
    effective = effective_groups(groups)
    violations += _reversals(groups, entries, effective)
    violations += _draws(groups, effective)
    for check in checks:
        violations += check(conn)
    return {
        "ok": not violations,
        "violations": violations,
        "checked": {"groups": len(groups), "entries": entry_count,
                    "orphan_entries": orphan, "requests": requests,
                    "chains": len(heads), "extra_checks": len(checks),
                    "anchor": bool(anchors)},
    }


def verify_database(db_url: str, key: ChainKey | None = None,
                    extra_checks: Iterable[ExtraCheck] | None = None,
                    anchor: Anchor | Sequence[Anchor] | None = None) -> dict[str, Any]:
    """Open ``db_url`` (path or URL), run every check, close; see :func:`verify_connection`.

    ``key`` defaults to the key file found for ``db_url`` (:func:`host.ledger.chain.key_path`;
    raises :class:`~host.ledger.chain.ChainKeyError` when there is none). ``extra_checks`` are
    the checks of tables built on the ledger (the host passes its store's and settlement's,
    :func:`host.store_verify.verify_host_database`); the ledger knows none of them itself.
    """
    if key is None:
        key = read_key(key_path(db_url))
    engine = open_engine(db_url)
    try:
        checks = list(extra_checks or ())
        with engine.connect() as conn:
            report = verify_connection(conn, key, checks, anchor)
            conn.rollback()
        return report
    finally:
        engine.dispose()


def _chain_row(conn: Connection, chain: str) -> Any:
    """The head row of ``chain``, or None."""
    rows = head_rows(conn, has_chains(conn))
    return next((h for h in rows if h.chain == chain), None)


def chain_heads(conn: Connection) -> list[tuple[str, Anchor]]:
    """Every chain's name and stored head as an anchor, oldest slot (``main``) first."""
    return [(str(h.chain), Anchor(int(h.last_id), h.last_hash))
            for h in head_rows(conn, has_chains(conn))]


def chain_head(conn: Connection, chain: str = MAIN) -> Anchor:
    """The stored head of ``chain`` as an anchor (last group id and hash); an empty ``main``
    when the database has no such chain."""
    return dict(chain_heads(conn)).get(chain, Anchor(MAIN_CHAIN.base, GENESIS_HASH))


def read_anchor(db_url: str, key: ChainKey, chain: str = MAIN) -> Anchor:
    """The head of ``chain`` in ``db_url`` as an anchor, once its MAC holds under ``key``.

    Raises :class:`~host.ledger.chain.ChainKeyError` for another key and :class:`ValueError`
    for a chain the ledger does not hold or a head that was altered (run verify then)."""
    engine = open_engine(db_url)
    try:
        with engine.connect() as conn:
            check_schema_version(conn)
            head = _chain_row(conn, chain)
            conn.rollback()
    finally:
        engine.dispose()
    if head is None:
        raise ValueError(f"the ledger holds no chain {chain!r}")
    if not key.adopt(head.key_check):
        raise ChainKeyError(f"the ledger was written with a different chain key than the one "
                            f"in {key.path}")
    if head.mac != head_mac(key, int(head.last_id), head.last_hash, int(head.entries), chain):
        raise ValueError("the chain head was altered (its MAC does not hold): run "
                         "'poslab-host ledger verify' before anchoring")
    return Anchor(int(head.last_id), head.last_hash)


def _anchor(anchor: Anchor, hashes: dict[int, tuple[str, str]]) -> list[Violation]:
    if anchor.last_id == 0:
        return []
    found = hashes.get(anchor.last_id)
    if found is None:
        return [_v("ANCHOR", f"the anchored group {anchor.last_id} is missing: the chain was "
                             f"cut back below the anchor")]
    if found[1] != anchor.last_hash:
        return [_v("ANCHOR", f"group {anchor.last_id} does not carry the anchored hash "
                             f"{anchor.last_hash[:12]}...: the chain was rewritten")]
    return []


def _requests(conn: Connection, key: ChainKey, out: list[Violation]) -> int:
    n = 0
    for r in conn.execute(select(request_log)).all():
        n += 1
        if r.mac != request_mac(key, r.key, r.fingerprint, r.result, int(r.at_ms)):
            out.append(_v("REQUEST", f"stored reply of request {r.key!r} was altered: it no "
                                     f"longer matches its MAC"))
    return n


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


def read_groups(conn: Connection) -> list[Group]:
    """Every posting group, by id (also on a database from before chains)."""
    columns = [c for c in posting_group.c if c.name != "chain"]
    return [Group(int(r.id), r.kind, r.reference,
                  None if r.reverses is None else int(r.reverses),
                  None if r.parent_id is None else int(r.parent_id),
                  r.currency, int(r.amount_minor), int(r.at_ms), r.memo)
            for r in conn.execute(select(*columns).order_by(posting_group.c.id)).all()]


def effective_groups(groups: list[Group]) -> dict[int, bool]:
    """Per group id: True unless an effective group reverses it."""
    reversers: dict[int, list[int]] = defaultdict(list)
    for g in groups:
        if g.reverses is not None:
            reversers[g.reverses].append(g.id)
    eff: dict[int, bool] = {}
    # A reversal comes after its target in its chain, but may sit on another chain, whose ids
    # are lower: each group is settled once all its reversers are. Iterative, and a cycle
    # (only forged rows make one) ends where it closes, counting as effective there.
    for g in groups:
        if g.id in eff:
            continue
        stack, seen = [g.id], {g.id}
        while stack:
            gid = stack[-1]
            todo = [r for r in reversers.get(gid, ()) if r not in eff and r not in seen]
            if todo:
                stack.extend(todo)
                seen.update(todo)
                continue
            eff[gid] = not any(eff.get(r, True) for r in reversers.get(gid, ()))
            stack.pop()
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
