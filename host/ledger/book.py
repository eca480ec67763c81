"""Posting balanced groups, mirroring them, balances, and idempotency records.

The ledger knows accounts, currencies, integer minor units and opaque references; it knows
nothing of ISO 8583, terminals or refunds. Every function takes the caller's open
:class:`~sqlalchemy.Connection` and runs inside the caller's transaction, so a request's rule
check, its postings and its stored response commit together (the response is sent only after
that commit).

Hash chain: group ``n`` stores ``prev_hash`` = hash of group ``n-1`` (``0`` * 64 for the first)
and ``hash`` = HMAC-SHA256 under the chain key (:mod:`host.ledger.chain`) of the compact JSON
of ``[prev_hash, id, kind, reference, reverses, parent_id, currency, amount_minor, at_ms, memo,
entries]`` where entries are ``[account, side, amount_minor]`` in insertion order. The head row
keeps the last id and hash, the number of entries and its own MAC. Changing any stored byte of
history breaks the chain from that group on, and without the key nobody can compute the hashes
again (:mod:`host.ledger.verify`).

Effective: a group is effective unless an effective group reverses it (a reversal that was
itself reversed no longer counts), so voiding a sale and then reversing the void makes the
sale effective again.

API for other modules (the settlement desk posts funding and fees through :meth:`Ledger.post`)::

    ledger = Ledger(key)
    gid = ledger.post_group(conn, [("scheme_settlement", "D", 1000),
                                   ("merchant_payable:M1", "C", 1000)],
                            currency="CNY", at_ms=now_ms, reference="txn:1", kind="sale")
    ledger.reverse(conn, gid, at_ms=now_ms, reference="txn:2", kind="void")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select, update

from host.ledger.chain import ChainKey
from host.ledger.prepared import Prepared
from host.ledger.schema import head_mac, ledger_entry, ledger_head, posting_group, request_log

# Statements of the posting path, built once and run as prepared statements (building and
# executing Core statements per call costs more CPU than the database's own work;
# docs/performance.md, host.ledger.prepared).
_HEAD_LOCKED = Prepared(select(ledger_head.c.last_id, ledger_head.c.last_hash,
                               ledger_head.c.entries).where(
    ledger_head.c.id == 1).with_for_update())
_HEAD_UPDATE = Prepared(update(ledger_head).where(ledger_head.c.id == 1))
_HEAD_ADVANCE = Prepared(update(ledger_head).where(
    ledger_head.c.id == 1, ledger_head.c.last_id == bindparam("seen_id"),
    ledger_head.c.last_hash == bindparam("seen_hash"),
    ledger_head.c.entries == bindparam("seen_entries")))
_GROUP_INSERT = Prepared(insert(posting_group))
_ENTRY_INSERT = Prepared(insert(ledger_entry))
_ENTRIES = Prepared(select(ledger_entry.c.account, ledger_entry.c.side, ledger_entry.c.amount_minor)
            .where(ledger_entry.c.group_id == bindparam("gid")).order_by(ledger_entry.c.id))
_GROUP = Prepared(select(posting_group).where(posting_group.c.id == bindparam("gid")))
_GROUPS = Prepared(select(posting_group).where(posting_group.c.reference == bindparam("ref"))
           .order_by(posting_group.c.id))
_REVERSERS = Prepared(select(posting_group.c.id).where(
    posting_group.c.reverses == bindparam("gid")))
_RECALL = Prepared(select(request_log.c.fingerprint, request_log.c.result).where(
    request_log.c.key == bindparam("k")))
_REMEMBER = Prepared(insert(request_log))

Entry = tuple[str, str, int]
"""``(account, "D" | "C", amount_minor)``."""


class LedgerError(ValueError):
    """A posting that would break the ledger's rules (unbalanced, empty, bad amount)."""


@dataclass(frozen=True)
class Group:
    """A posting group as stored (without its entries)."""

    id: int
    kind: str
    reference: str
    reverses: int | None
    parent_id: int | None
    currency: str
    amount_minor: int
    at_ms: int
    memo: str


def group_hash(key: ChainKey, prev_hash: str, group: Group, entries: Sequence[Entry]) -> str:
    """The chain hash of one group (see the module docstring)."""
    return key.mac([prev_hash, group.id, group.kind, group.reference, group.reverses,
                    group.parent_id, group.currency, group.amount_minor, group.at_ms, group.memo,
                    [[a, s, int(m)] for a, s, m in entries]])


def request_mac(key: ChainKey, rkey: str, fingerprint: str, result: str, at_ms: int) -> str:
    """The MAC of one stored reply (``request_log`` row)."""
    # Length-prefixed where a value may hold the separator: one text, one reading.
    return key.mac_text(f"request|{at_ms}|{len(rkey)}:{rkey}|{len(fingerprint)}:{fingerprint}|"
                        f"{result}")


def to_ms(at: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(at.timestamp() * 1000)


def _check(entries: Sequence[Entry]) -> int:
    if not entries:
        raise LedgerError("a posting group needs entries")
    debit = credit = 0
    for account, side, amount in entries:
        if side not in ("D", "C"):
            raise LedgerError(f"side of {account!r} must be D or C, not {side!r}")
        if not isinstance(amount, int) or amount <= 0:
            raise LedgerError(f"amount of {account!r} must be a positive integer, got {amount!r}")
        if side == "D":
            debit += amount
        else:
            credit += amount
    if debit != credit:
        raise LedgerError(f"unbalanced group: debits {debit} != credits {credit}")
    return debit


class Ledger:
    """Double-entry book on the caller's connection (safe to share between threads).

    ``key`` is the chain key every hash is made with. The only state is a hint: the chain head
    this instance last wrote. A posting first tries to advance the stored head *from that hint*
    with one conditional UPDATE (``WHERE last_id, last_hash, entries = hint``), which also
    takes the head's row lock; when another writer (another service on the same database, a
    rolled-back savepoint) moved the head, the UPDATE matches nothing and the posting falls
    back to reading the head under lock. Either way the new group links to the head as stored
    in the writer's transaction, so the chain never forks; the hint only saves the read.
    """

    def __init__(self, key: ChainKey) -> None:
        self.key = key
        self._head: tuple[int, str, int] | None = None

    def post_group(self, conn: Connection, entries: Sequence[Entry], *, currency: str,
                   at_ms: int, reference: str, kind: str = "posting", memo: str = "",
                   reverses: int | None = None, parent_id: int | None = None) -> int:
        """Append one balanced group and return its id.

        Raises :class:`LedgerError` when the entries do not balance or an amount is not a
        positive integer; nothing is written then.
        """
        amount = _check(entries)
        key = self.key
        hint = self._head
        if hint is not None:
            group = Group(hint[0] + 1, kind, reference, reverses, parent_id, currency, amount,
                          at_ms, memo)
            prev, digest = hint[1], group_hash(key, hint[1], group, entries)
            count = hint[2] + len(entries)
            if _HEAD_ADVANCE.run(conn, {
                    "seen_id": hint[0], "seen_hash": prev, "seen_entries": hint[2],
                    "last_id": group.id, "last_hash": digest, "entries": count,
                    "mac": head_mac(key, group.id, digest, count)}).rowcount != 1:
                hint = None
        if hint is None:
            head = _HEAD_LOCKED.run(conn).one()
            group = Group(int(head.last_id) + 1, kind, reference, reverses, parent_id, currency,
                          amount, at_ms, memo)
            prev, digest = head.last_hash, group_hash(key, head.last_hash, group, entries)
            count = int(head.entries) + len(entries)
            _HEAD_UPDATE.run(conn, {"last_id": group.id, "last_hash": digest, "entries": count,
                                    "mac": head_mac(key, group.id, digest, count)})
        _GROUP_INSERT.run(conn, {
            "id": group.id, "kind": kind, "reference": reference, "reverses": reverses,
            "parent_id": parent_id, "currency": currency, "amount_minor": amount,
            "at_ms": at_ms, "memo": memo, "prev_hash": prev, "hash": digest})
        _ENTRY_INSERT.run_many(conn, [
            {"group_id": group.id, "account": a, "side": s, "amount_minor": m,
             "currency": currency} for a, s, m in entries])
        self._head = (group.id, digest, count)  # a hint: wrong after a rollback, then a miss
        return group.id

    def post(self, conn: Connection, entries: Sequence[Entry], *, currency: str, at: datetime,
             reference: str) -> str:
        """:class:`host.settlement.jobs.LedgerPoster`: post a group, return its id as text."""
        return str(self.post_group(conn, entries, currency=currency, at_ms=to_ms(at),
                                   reference=reference, kind="settlement"))

    def entries(self, conn: Connection, group_id: int) -> list[Entry]:
        """The entries of one group in insertion order."""
        rows = _ENTRIES.run(conn, {"gid": group_id}).all()
        return [(r.account, r.side, int(r.amount_minor)) for r in rows]

    def group(self, conn: Connection, group_id: int) -> Group | None:
        """One group, or None."""
        row = _GROUP.run(conn, {"gid": group_id}).first()
        return None if row is None else _group(row)

    def groups(self, conn: Connection, reference: str) -> list[Group]:
        """Every group with this reference, oldest first."""
        rows = _GROUPS.run(conn, {"ref": reference}).all()
        return [_group(r) for r in rows]

    def effective(self, conn: Connection, group_id: int) -> bool:
        """True unless an effective group reverses this one."""
        reversers = _REVERSERS.run(conn, {"gid": group_id}).scalars().all()
        return not any(self.effective(conn, int(r)) for r in reversers)

    def reverse(self, conn: Connection, group_id: int, *, at_ms: int, reference: str,
                kind: str = "reversal", memo: str = "") -> int:
        """Append the exact mirror of ``group_id`` (same accounts and amounts, sides swapped).

        Raises :class:`LedgerError` when the group does not exist or is no longer effective
        (a group is reversed at most once, invariant I7).
        """
        original = self.group(conn, group_id)
        if original is None:
            raise LedgerError(f"no posting group {group_id}")
        if not self.effective(conn, group_id):
            raise LedgerError(f"posting group {group_id} is already reversed")
        mirror = [(a, "C" if s == "D" else "D", m) for a, s, m in self.entries(conn, group_id)]
        return self.post_group(conn, mirror, currency=original.currency, at_ms=at_ms,
                               reference=reference, kind=kind, memo=memo, reverses=group_id)

    def reverse_reference(self, conn: Connection, reference: str, *, at_ms: int,
                          new_reference: str, kind: str = "reversal", memo: str = "") -> list[int]:
        """Mirror every still effective group of ``reference``, newest first."""
        done = []
        for g in reversed(self.groups(conn, reference)):
            if self.effective(conn, g.id):
                done.append(self.reverse(conn, g.id, at_ms=at_ms, reference=new_reference,
                                         kind=kind, memo=memo))
        return done

    def balances(self, conn: Connection) -> dict[str, dict[str, int]]:
        """Net debit (debits - credits) per account per currency."""
        signed = func.sum(ledger_entry.c.amount_minor
                          * case((ledger_entry.c.side == "D", 1), else_=-1))
        rows = conn.execute(select(ledger_entry.c.account, ledger_entry.c.currency, signed)
                            .group_by(ledger_entry.c.account, ledger_entry.c.currency)
                            .order_by(ledger_entry.c.account)).all()
        out: dict[str, dict[str, int]] = {}
        for account, cur, total in rows:
            out.setdefault(account, {})[cur] = int(total or 0)
        return out

    # -- idempotency records (invariant I5) -------------------------------------------------

    def recall(self, conn: Connection, key: str) -> tuple[str, str] | None:
        """``(fingerprint, result)`` stored under ``key``, or None."""
        row = _RECALL.run(conn, {"k": key}).first()
        return None if row is None else (row.fingerprint, row.result)

    def remember(self, conn: Connection, key: str, fingerprint: str, result: str,
                 at_ms: int) -> None:
        """Store the result of the request ``key`` (raises IntegrityError if already there)."""
        _REMEMBER.run(conn, {"key": key, "fingerprint": fingerprint, "result": result,
                             "at_ms": at_ms,
                             "mac": request_mac(self.key, key, fingerprint, result, at_ms)})


def _group(r: Any) -> Group:
    return Group(int(r.id), r.kind, r.reference, None if r.reverses is None else int(r.reverses),
                 None if r.parent_id is None else int(r.parent_id), r.currency,
                 int(r.amount_minor), int(r.at_ms), r.memo)
