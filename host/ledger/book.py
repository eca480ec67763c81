"""Posting balanced groups, mirroring them, balances, and idempotency records.

The ledger knows accounts, currencies, integer minor units and opaque references; it knows
nothing of ISO 8583, terminals or refunds. Every function takes the caller's open
:class:`~sqlalchemy.Connection` and runs inside the caller's transaction, so a request's rule
check, its postings and its stored response commit together (the response is sent only after
that commit).

Hash chain: a group stores ``prev_hash`` = hash of the previous group of its chain (``0`` * 64
for the first; :mod:`host.ledger.chains`) and ``hash`` = the chain key's MAC
(:mod:`host.ledger.chain`) of the compact JSON of ``[prev_hash, id, kind, reference, reverses,
parent_id, currency, amount_minor, at_ms, memo, entries]`` where entries are ``[account, side,
amount_minor]`` in insertion order. The chain's head row keeps the last id and hash, the number
of entries and its own MAC. The chain's name is not in the document: the id is, and each
chain's ids lie in a range of their own. Changing any stored byte of history breaks the chain
from that group on, and without the key nobody can compute the hashes again
(:mod:`host.ledger.verify`).

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
from datetime import datetime
from typing import Any, NamedTuple
from weakref import WeakSet

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    bindparam,
    case,
    event,
    exists,
    func,
    insert,
    select,
    update,
)

from host.ledger import pending
from host.ledger.chain import ChainKey
from host.ledger.chains import MAIN_CHAIN, Chain, head_mac
from host.ledger.prepared import Prepared, fast_path
from host.ledger.schema import ledger_entry, ledger_head, posting_group, request_log

# Statements of the posting path, built once and run as prepared statements (building and
# executing Core statements per call costs more CPU than the database's own work;
# docs/performance.md, host.ledger.prepared).
# The head row is the writer's own chain's (``head_chain``): writers of other chains lock other
# rows (host.ledger.chains).
_THIS_HEAD = ledger_head.c.chain == bindparam("head_chain", type_=String)
_HEAD_LOCKED = Prepared(select(ledger_head.c.last_id, ledger_head.c.last_hash,
                               ledger_head.c.entries).where(_THIS_HEAD).with_for_update())
_HEAD_UPDATE = Prepared(update(ledger_head).where(_THIS_HEAD))
_HEAD_ADVANCE = Prepared(update(ledger_head).where(
    _THIS_HEAD, ledger_head.c.last_id == bindparam("seen_id"),
    ledger_head.c.last_hash == bindparam("seen_hash"),
    ledger_head.c.entries == bindparam("seen_entries")))
_GROUP_INSERT = Prepared(insert(posting_group))
_GROUP_COLUMNS = ("id", "kind", "reference", "reverses", "parent_id", "currency", "amount_minor",
                  "at_ms", "memo", "prev_hash", "hash", "chain")
# A group appended only while its predecessor is still there (see Ledger, "deferred head").
_GROUP_APPEND = Prepared(insert(posting_group).from_select(
    list(_GROUP_COLUMNS),
    select(*[bindparam(c, type_=posting_group.c[c].type) for c in _GROUP_COLUMNS]).where(
        exists().where(posting_group.c.id == bindparam("prev_id"),
                       posting_group.c.hash == bindparam("prev_hash")))))
# PostgreSQL: the head advanced from the hint and the group appended after it, one statement
# (one round trip); when the head moved meanwhile neither happens (no row returned; the row
# count of such a statement is not reliable through SQLAlchemy's result). The group's
# values are bound as ``g_<column>``: the nested UPDATE would take a key named like one of
# the head's columns (``id``) as a column to set.
_HEAD_ADVANCED = update(ledger_head).where(
    _THIS_HEAD, ledger_head.c.last_id == bindparam("seen_id"),
    ledger_head.c.last_hash == bindparam("seen_hash"),
    ledger_head.c.entries == bindparam("seen_entries")).values(
    last_id=bindparam("g_id", type_=BigInteger), last_hash=bindparam("g_hash", type_=String),
    entries=bindparam("head_entries", type_=BigInteger),
    mac=bindparam("head_mac", type_=String)).returning(ledger_head.c.id)


def _group_after(head: Any) -> Any:
    """The group's INSERT, one row only when the CTE ``head`` returned one, ``RETURNING`` id."""
    return insert(posting_group).from_select(
        list(_GROUP_COLUMNS),
        select(*[bindparam(f"g_{c}", type_=posting_group.c[c].type) for c in _GROUP_COLUMNS])
        .select_from(head)).returning(posting_group.c.id)


_GROUP_AFTER_HEAD = Prepared(_group_after(_HEAD_ADVANCED.cte("head")))
# The same as statements that lead a flush of the request's writes (host.ledger.pending):
# ``poslab_head AS (UPDATE ...), poslab_group AS (INSERT ... RETURNING id)``.
_GUARD_NAME = "poslab_group"
_GUARD_STMT = select(func.count()).select_from(
    _group_after(_HEAD_ADVANCED.cte("poslab_head")).cte(_GUARD_NAME))
# Per dialect name: the CTEs' text and the values of its own literals (if any), or None.
_GUARD_CTES: dict[str, tuple[str, dict[str, Any]] | None] = {}
# The head moved to a group only while that group is still there.
_HEAD_FLUSH = Prepared(update(ledger_head).where(_THIS_HEAD, exists().where(
    posting_group.c.id == bindparam("last_id_"), posting_group.c.hash == bindparam("last_hash_"))))
# Within the chain's id range: ``after`` up to ``before`` (its end).
_LAST_GROUP = Prepared(select(posting_group.c.id, posting_group.c.hash)
                       .where(posting_group.c.id > bindparam("after"),
                              posting_group.c.id < bindparam("before"))
                       .order_by(posting_group.c.id.desc()).limit(1))
_ENTRIES_AFTER = Prepared(select(func.count()).select_from(ledger_entry)
                          .where(ledger_entry.c.group_id > bindparam("after"),
                                 ledger_entry.c.group_id < bindparam("before")))
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


class Group(NamedTuple):
    """A posting group as stored (without its entries).

    A named tuple rather than a frozen dataclass: one is built per posting, and a frozen
    dataclass's ``__init__`` costs several times as much."""

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


def _group_row(group: Group, prev_hash: str, digest: str, chain: str) -> dict[str, Any]:
    """The ``posting_group`` row of ``group`` on ``chain``."""
    return {"id": group.id, "kind": group.kind, "reference": group.reference,
            "reverses": group.reverses, "parent_id": group.parent_id,
            "currency": group.currency, "amount_minor": group.amount_minor,
            "at_ms": group.at_ms, "memo": group.memo, "prev_hash": prev_hash, "hash": digest,
            "chain": chain}


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


Head = tuple[int, str, int]
"""A chain head: last group id, its hash, number of entries."""
_OPEN = "poslab_ledger_open"  # key in Connection.info: the deferred head of its transaction
_FLUSHED: WeakSet[Engine] = WeakSet()  # engines whose commits write a deferred head


class _Open:
    """The chain end a SQLite transaction has written beyond its head row (deferred head)."""

    __slots__ = ("txn", "ledger", "pending", "stored")

    def __init__(self, txn: Any, ledger: Ledger, head: Head) -> None:
        self.txn = txn
        self.ledger = ledger
        self.pending = head
        """The chain end as this transaction wrote it."""
        self.stored = head
        """What the head row holds now."""


class Ledger:
    """Double-entry book on the caller's connection (safe to share between threads).

    ``key`` is the chain key every hash is made with, ``chain`` the chain this instance writes
    (:mod:`host.ledger.chains`; its ids, its head row). The only state is a hint: the chain head
    this instance last wrote. A posting first tries to advance the stored head *from that hint*
    with one conditional UPDATE (``WHERE last_id, last_hash, entries = hint``), which also
    takes the head's row lock; when another writer (another service on the same database, a
    rolled-back savepoint) moved the head, the UPDATE matches nothing and the posting falls
    back to reading the head under lock. Either way the new group links to the head as stored
    in the writer's transaction, so the chain never forks; the hint only saves the read.

    **Deferred head (SQLite).** SQLite's write lock (``BEGIN IMMEDIATE``) already keeps every
    other writer out until the commit, so within one transaction only the first posting writes
    the head row; the next ones append their group *only while its predecessor is still there*
    (``INSERT ... SELECT ... WHERE EXISTS``), which finds out a savepoint that was rolled back
    under it, and the head row is written once more, just before the COMMIT (a ``commit`` event
    on the engine; again only while the last group is there). A posting or a commit that finds
    its predecessor gone first re-reads the chain end from the database. Group commit thereby
    writes the head, and makes its MAC, twice per batch instead of once per request. PostgreSQL
    writes the head with every group: its row lock is what orders concurrent writers there.
    When the hint holds, the head's UPDATE and the group's INSERT go as one statement (a
    data-modifying ``WITH``): one round trip, and no group when the head did not move.
    """

    def __init__(self, key: ChainKey, chain: Chain = MAIN_CHAIN) -> None:
        self.key = key
        self.chain = chain
        self._head_row = {"head_chain": chain.name}  # parameters naming its head row
        self._head: Head | None = None

    def _head_values(self, last_id: int, last_hash: str, entries: int) -> dict[str, Any]:
        """The head row's values once the chain ends at ``last_id`` (its MAC made), and the
        name of the row: the parameters of the statements that write the head."""
        return {"last_id": last_id, "last_hash": last_hash, "entries": entries,
                "mac": head_mac(self.key, last_id, last_hash, entries, self.chain.name),
                "head_chain": self.chain.name}

    def post_group(self, conn: Connection, entries: Sequence[Entry], *, currency: str,
                   at_ms: int, reference: str, kind: str = "posting", memo: str = "",
                   reverses: int | None = None, parent_id: int | None = None) -> int:
        """Append one balanced group and return its id.

        Raises :class:`LedgerError` when the entries do not balance or an amount is not a
        positive integer, :class:`~host.ledger.chains.ChainFull` when the chain's id range is
        used up; nothing is written then.
        """
        amount = _check(entries)
        key = self.key
        name = self.chain.name
        info = conn.info
        open_: _Open | None = info.get(_OPEN)
        if open_ is not None:
            if open_.txn is conn.get_transaction():
                gid = self._append(conn, open_, entries, amount, currency, at_ms, reference,
                                   kind, memo, reverses, parent_id)
                if gid is not None:
                    return gid
                self._head = _resync(conn, open_)  # the predecessor was rolled back
            del info[_OPEN]
        hint = self._head
        sqlite = conn.dialect.name == "sqlite"
        written = False  # the group row too (PostgreSQL's one-statement advance)
        if hint is not None:
            group = Group(self.chain.next_id(hint[0]), kind, reference, reverses, parent_id,
                          currency, amount, at_ms, memo)
            prev, digest = hint[1], group_hash(key, hint[1], group, entries)
            count = hint[2] + len(entries)
            seen = {"seen_id": hint[0], "seen_hash": prev, "seen_entries": hint[2]}
            moved = self._head_values(group.id, digest, count)
            if sqlite:
                advanced = _HEAD_ADVANCE.run(conn, {**seen, **moved}).rowcount == 1
            else:
                params = {**seen, "head_entries": count, "head_mac": moved["mac"],
                          "head_chain": name,
                          **{f"g_{k}": v
                             for k, v in _group_row(group, prev, digest, name).items()}}
                lead = _guard_ctes(conn) if pending.may_guard(conn) and fast_path(conn) \
                    else None
                if lead is not None:  # sent with the request's writes; a miss runs it again
                    pending.guard(conn, pending.Guard(lead[0], _GUARD_NAME,
                                                      {**lead[1], **params}, self.forget_head))
                    advanced = written = True
                else:
                    advanced = written = _GROUP_AFTER_HEAD.run(conn, params).first() is not None
            if not advanced:
                hint = None
        if hint is None:
            head = _HEAD_LOCKED.run(conn, self._head_row).one()
            group = Group(self.chain.next_id(int(head.last_id)), kind, reference, reverses,
                          parent_id, currency, amount, at_ms, memo)
            prev, digest = head.last_hash, group_hash(key, head.last_hash, group, entries)
            count = int(head.entries) + len(entries)
            _HEAD_UPDATE.run(conn, self._head_values(group.id, digest, count))
        if not written:
            _GROUP_INSERT.run(conn, _group_row(group, prev, digest, name))
        # PostgreSQL: the entries go with the request's other writes (host.ledger.pending).
        _ENTRY_INSERT.later_many(conn, [
            {"group_id": group.id, "account": a, "side": s, "amount_minor": m,
             "currency": currency} for a, s, m in entries])
        self._head = (group.id, digest, count)  # a hint: wrong after a rollback, then a miss
        if sqlite:
            _flush_on_commit(conn.engine)
            info[_OPEN] = _Open(conn.get_transaction(), self, self._head)
        return group.id

    def forget_head(self) -> None:
        """Drop the chain-head hint: the next posting reads the head under lock. For a
        rollback of postings (a hint left there would only miss once)."""
        self._head = None

    def _append(self, conn: Connection, open_: _Open, entries: Sequence[Entry], amount: int,
                currency: str, at_ms: int, reference: str, kind: str, memo: str,
                reverses: int | None, parent_id: int | None) -> int | None:
        """Append a group after the transaction's pending chain end, leaving the head row for
        the commit; None (nothing written) when that end was rolled back meanwhile."""
        last_id, prev, count = open_.pending
        # Refused before anything is written, so the transaction's deferred head stays as it
        # is (a re-read here, then the refusal, would lose it with the savepoint). Should that
        # last id have been rolled back, it is left for the next transaction.
        group = Group(self.chain.next_id(last_id), kind, reference, reverses, parent_id,
                      currency, amount, at_ms, memo)
        digest = group_hash(self.key, prev, group, entries)
        if _GROUP_APPEND.run(conn, {
                "id": group.id, "kind": kind, "reference": reference, "reverses": reverses,
                "parent_id": parent_id, "currency": currency, "amount_minor": amount,
                "at_ms": at_ms, "memo": memo, "prev_hash": prev, "hash": digest,
                "chain": self.chain.name, "prev_id": last_id}).rowcount != 1:
            return None
        _ENTRY_INSERT.run_many(conn, [
            {"group_id": group.id, "account": a, "side": s, "amount_minor": m,
             "currency": currency} for a, s, m in entries])
        open_.pending = (group.id, digest, count + len(entries))
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
        return self._mirror(conn, original, at_ms=at_ms, reference=reference, kind=kind,
                            memo=memo)

    def _mirror(self, conn: Connection, original: Group, *, at_ms: int, reference: str,
                kind: str, memo: str) -> int:
        """Post the mirror of ``original``, known to exist and to be effective."""
        mirror = [(a, "C" if s == "D" else "D", m) for a, s, m in self.entries(conn, original.id)]
        return self.post_group(conn, mirror, currency=original.currency, at_ms=at_ms,
                               reference=reference, kind=kind, memo=memo, reverses=original.id)

    def reverse_reference(self, conn: Connection, reference: str, *, at_ms: int,
                          new_reference: str, kind: str = "reversal", memo: str = "") -> list[int]:
        """Mirror every still effective group of ``reference``, newest first."""
        done = []
        for g in reversed(self.groups(conn, reference)):
            if self.effective(conn, g.id):  # read and checked here: not again by reverse()
                done.append(self._mirror(conn, g, at_ms=at_ms, reference=new_reference,
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
        return recall(conn, key)

    def remember(self, conn: Connection, key: str, fingerprint: str, result: str,
                 at_ms: int) -> None:
        """Store the result of the request ``key``: an IntegrityError if already there, raised
        here or, on PostgreSQL, when the request's writes are sent (host.ledger.pending)."""
        _REMEMBER.later(conn, {"key": key, "fingerprint": fingerprint, "result": result,
                               "at_ms": at_ms,
                               "mac": request_mac(self.key, key, fingerprint, result, at_ms)})


def recall(conn: Connection, key: str) -> tuple[str, str] | None:
    """``(fingerprint, result)`` of the request log under ``key``, or None."""
    row = _RECALL.run(conn, {"k": key}).first()
    return None if row is None else (row.fingerprint, row.result)


def _guard_ctes(conn: Connection) -> tuple[str, dict[str, Any]] | None:
    """The head's advance and the group's append as the CTEs that lead a flush, with the
    values of the literals they carry (their other parameters as in ``_GROUP_AFTER_HEAD``),
    for ``conn``'s dialect; None when the compiled text is not of the expected shape (then
    the statement runs on its own)."""
    name = conn.dialect.name
    if name not in _GUARD_CTES:
        compiled = _GUARD_STMT.compile(dialect=conn.dialect)
        flat = " ".join(compiled.string.split())
        tail = f" SELECT count(*) AS count_1 FROM {_GUARD_NAME}"
        fixed = {key: bind.effective_value for bind, key in compiled.bind_names.items()
                 if not bind.required}
        _GUARD_CTES[name] = ((flat.removeprefix("WITH ").removesuffix(tail), fixed)
                             if flat.startswith("WITH poslab_head AS (") and flat.endswith(tail)
                             and "%%" not in flat else None)
    return _GUARD_CTES[name]


def _flush_on_commit(engine: Engine) -> None:
    """Have ``engine`` write each transaction's deferred head just before its COMMIT."""
    if engine not in _FLUSHED:
        event.listen(engine, "commit", _flush_head)
        event.listen(engine, "rollback", _forget_head)
        _FLUSHED.add(engine)


def _flush_head(conn: Connection) -> None:
    """``commit`` event: write the head row when postings went past it (see :class:`Ledger`)."""
    open_: _Open | None = conn.info.pop(_OPEN, None)
    if open_ is None or open_.pending == open_.stored or open_.txn is not conn.get_transaction():
        return
    last_id, last_hash, count = open_.pending
    if _HEAD_FLUSH.run(conn, {"last_id_": last_id, "last_hash_": last_hash,
                              **open_.ledger._head_values(last_id, last_hash, count)}
                       ).rowcount != 1:
        open_.pending = _resync(conn, open_)  # the newest postings were rolled back
    open_.ledger._head = open_.pending


def _forget_head(conn: Connection) -> None:
    """``rollback`` event: the transaction's postings and deferred head are gone."""
    open_: _Open | None = conn.info.pop(_OPEN, None)
    if open_ is not None:
        open_.ledger._head = None


def _resync(conn: Connection, open_: _Open) -> Head:
    """Write the head row from the chain as it stands in this transaction, and return it.

    The head row always holds a whole prefix of the chain (the transaction's first posting
    wrote it, or it is as committed before); what lies beyond it is this transaction's."""
    chain = open_.ledger.chain
    head = _HEAD_LOCKED.run(conn, open_.ledger._head_row).one()
    after = int(head.last_id)
    span = {"after": after, "before": chain.end}
    last = _LAST_GROUP.run(conn, span).first()
    if last is None:
        return (after, head.last_hash, int(head.entries))
    count = int(head.entries) + int(_ENTRIES_AFTER.run(conn, span).scalar_one())
    found = (int(last.id), str(last.hash), count)
    _HEAD_UPDATE.run(conn, open_.ledger._head_values(*found))
    open_.stored = open_.pending = found
    return found


def _group(r: Any) -> Group:
    return Group(int(r.id), r.kind, r.reference, None if r.reverses is None else int(r.reverses),
                 None if r.parent_id is None else int(r.parent_id), r.currency,
                 int(r.amount_minor), int(r.at_ms), r.memo)
