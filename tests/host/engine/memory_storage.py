"""The storage port (host.pipeline.ports) in plain Python objects, for tests of the pipeline's
decisions without a database.

It keeps the SQL adapter's semantics where the pipeline can see them: row ids, RRNs and
approval codes derived from the id, one open batch per terminal, tombstones, the ledger's
"effective" rule (a group is effective unless an effective group reverses it) and mirrors,
and all-or-nothing transactions (a failed request or savepoint leaves no trace). It keeps no
MACs, no history triggers and no locks: one thread, nothing to tamper with.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar

from host.rules import OriginalView
from host.store import approval_code_for, rrn_for

T = TypeVar("T")

_TXN_OPTIONAL = {"pan_masked": None, "pan_hash": None, "original_id": None, "rule": None,
                 "batch_id": None, "group_id": None, "review_state": None, "reason": None,
                 "evidence": None, "operator": None, "rules_fired": "[]"}


class MemoryStorageError(Exception):
    """What a broken invariant of the memory tables raises (a bug in the caller)."""


@dataclass
class Tables:
    """Everything stored; a transaction works on the live tables and is undone from a copy."""

    txns: dict[int, dict[str, Any]] = field(default_factory=dict)
    terminals: dict[str, dict[str, Any]] = field(default_factory=dict)
    batches: dict[int, dict[str, Any]] = field(default_factory=dict)
    marks: list[dict[str, Any]] = field(default_factory=list)
    reviews: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[tuple[int | None, int, str, str]] = field(default_factory=list)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)
    last_txn_id: int = 0


def _row(values: Mapping[str, Any] | None) -> Any:
    """A copy read by attribute, as a SQL row is."""
    return None if values is None else SimpleNamespace(**values)


class MemoryStore:
    """:class:`host.pipeline.ports.TxnStore` over :class:`Tables`."""

    def __init__(self, rrn_prefix: str = "") -> None:
        self.rrn_prefix = rrn_prefix

    # -- terminals and batches --------------------------------------------------------------

    def terminal(self, conn: Tables, tid: str, *, lock: bool = False) -> Any:
        return _row(conn.terminals.get(tid))

    def ensure_terminal(self, conn: Tables, tid: str, mid: str, at_ms: int, *, enrolled: bool,
                        locked: Any = None) -> Any:
        if locked is not None:
            return locked
        if tid not in conn.terminals:
            conn.terminals[tid] = {"terminal_id": tid, "merchant_id": mid,
                                   "enrolled": int(enrolled), "open_batch_id": None,
                                   "signed_on": 0, "since_ms": at_ms}
        return _row(conn.terminals[tid])

    def set_signed_on(self, conn: Tables, tid: str, signed_on: bool) -> None:
        conn.terminals[tid]["signed_on"] = int(signed_on)

    def open_batch(self, conn: Tables, tid: str, mid: str, at_ms: int, business_date: str, *,
                   locked: Any = None) -> int:
        row = self.ensure_terminal(conn, tid, mid, at_ms, enrolled=False, locked=locked)
        if row.open_batch_id is not None:
            return int(row.open_batch_id)
        bid = len(conn.batches) + 1
        conn.batches[bid] = {"id": bid, "terminal_id": tid, "merchant_id": mid, "state": "open",
                             "business_date": business_date, "opened_ms": at_ms,
                             "closed_ms": None, "number": None, "closed_by": None,
                             "totals": None}
        conn.terminals[tid]["open_batch_id"] = bid
        return bid

    def current_batch(self, conn: Tables, tid: str) -> Any:
        row = conn.terminals.get(tid)
        if row is None or row["open_batch_id"] is None:
            return None
        return _row(conn.batches.get(row["open_batch_id"]))

    def closed_batch(self, conn: Tables, tid: str, number: str) -> Any:
        found = [b for b in conn.batches.values()
                 if b["terminal_id"] == tid and b["number"] == number and b["state"] == "closed"]
        return _row(max(found, key=lambda b: b["id"])) if found else None

    def batch_totals(self, conn: Tables, batch_id: int, currency: str) -> dict[str, int]:
        out = {"debits_count": 0, "debits_minor": 0, "credits_count": 0, "credits_minor": 0}
        for t in conn.txns.values():
            if (t["batch_id"] == batch_id and t["state"] == "approved"
                    and t["currency"] == currency
                    and t["kind"] in ("sale", "completion", "refund")):
                side = "credits" if t["kind"] == "refund" else "debits"
                out[f"{side}_count"] += 1
                out[f"{side}_minor"] += int(t["amount_minor"])
        return out

    def close_batch(self, conn: Tables, batch_id: int, *, number: str | None, at_ms: int,
                    closed_by: str, totals: Mapping[str, object]) -> None:
        row = conn.batches[batch_id]
        row.update(state="closed", closed_ms=at_ms, number=number, closed_by=closed_by,
                   totals=json.dumps(totals, sort_keys=True))
        term = conn.terminals[row["terminal_id"]]
        if term["open_batch_id"] == batch_id:
            term["open_batch_id"] = None

    # -- transactions -----------------------------------------------------------------------

    def new_txn(self, conn: Tables) -> tuple[int, str, str]:
        conn.last_txn_id += 1
        tid = conn.last_txn_id
        return tid, rrn_for(self.rrn_prefix, tid), approval_code_for(tid)

    def insert_txn(self, conn: Tables, **values: Any) -> tuple[int, str, str]:
        if any(t["request_key"] == values["request_key"] for t in conn.txns.values()):
            raise MemoryStorageError(f"request key {values['request_key']} stored twice")
        if "id" not in values:
            values["id"], values["rrn"], values["approval_code"] = self.new_txn(conn)
        if values["id"] in conn.txns:
            raise MemoryStorageError(f"transaction id {values['id']} used twice")
        conn.txns[values["id"]] = {**_TXN_OPTIONAL, **values}
        return values["id"], values["rrn"], values["approval_code"]

    def update_txn(self, conn: Tables, txn_id: int, **values: Any) -> None:
        conn.txns[txn_id].update(values)

    def txn_by_id(self, conn: Tables, txn_id: int | None, *, lock: bool = False) -> Any:
        return None if txn_id is None else _row(conn.txns.get(int(txn_id)))

    def txn_by_rrn(self, conn: Tables, rrn: str, *, lock: bool = False) -> Any:
        return _row(next((t for t in conn.txns.values() if t["rrn"] == rrn), None))

    def txn_by_request_key(self, conn: Tables, key: str) -> Any:
        return _row(next((t for t in conn.txns.values() if t["request_key"] == key), None))

    def find_hold(self, conn: Tables, tid: str, mid: str, approval_code: str,
                  rrn: str | None) -> Any:
        found = [t for t in conn.txns.values()
                 if t["kind"] == "auth" and t["terminal_id"] == tid and t["merchant_id"] == mid
                 and t["approval_code"] == approval_code and (not rrn or t["rrn"] == rrn)]
        return _row(max(found, key=lambda t: t["id"])) if found else None

    def merchant_refunded(self, conn: Tables, mid: str, business_date: str) -> int:
        return sum(int(t["amount_minor"]) for t in conn.txns.values()
                   if t["merchant_id"] == mid and t["business_date"] == business_date
                   and t["kind"] == "refund" and t["state"] == "approved")

    def original(self, conn: Tables, rrn: str) -> tuple[Any, Any]:
        row = self.txn_by_rrn(conn, rrn)
        return (None, None) if row is None else (row, self.view(conn, row))

    def view(self, conn: Tables, row: Any) -> OriginalView:
        refunds = [t for t in conn.txns.values() if t["original_id"] == row.id
                   and t["kind"] == "refund" and t["state"] == "approved"]
        batch = conn.batches.get(row.batch_id) if row.batch_id is not None else None
        return OriginalView(kind=row.kind, state=row.state, merchant_id=row.merchant_id,
                            terminal_id=row.terminal_id, currency=row.currency,
                            amount_minor=int(row.amount_minor), pan_hash=row.pan_hash,
                            created_ms=int(row.at_ms),
                            batch_open=batch is not None and batch["state"] == "open",
                            refunded_minor=sum(int(t["amount_minor"]) for t in refunds),
                            refund_count=len(refunds))

    # -- reversals and tombstones -----------------------------------------------------------

    def reversal_target(self, conn: Tables, mid: str, tid: str, stan: str,
                        business_dates: Sequence[str]) -> Any:
        for bdate in business_dates:
            found = [t for t in conn.txns.values()
                     if (t["merchant_id"], t["terminal_id"], t["stan"], t["business_date"])
                     == (mid, tid, stan, bdate) and t["state"] != "declined"]
            if found:
                return _row(max(found, key=lambda t: t["id"]))
        return None

    def mark_reversal(self, conn: Tables, mid: str, tid: str, stan: str, business_date: str,
                      target_id: int | None, at_ms: int) -> None:
        conn.marks.append({"merchant_id": mid, "terminal_id": tid, "stan": stan,
                           "business_date": business_date, "target_id": target_id,
                           "at_ms": at_ms})

    def tombstoned(self, conn: Tables, mid: str, tid: str, stan: str,
                   business_dates: Sequence[str]) -> bool:
        return any((m["merchant_id"], m["terminal_id"], m["stan"]) == (mid, tid, stan)
                   and m["business_date"] in business_dates and m["target_id"] is None
                   for m in conn.marks)

    def arrival(self, conn: Tables, tid: str, mid: str, stan: str,
                business_dates: Sequence[str], key: str, *,
                books: bool = False) -> tuple[Any, Any, bool]:
        return (self.terminal(conn, tid), conn.answers.get(key),
                self.tombstoned(conn, mid, tid, stan, business_dates))

    # -- reviews and events -----------------------------------------------------------------

    def add_review(self, conn: Tables, txn_id: int, level: int, at_ms: int) -> int:
        rid = len(conn.reviews) + 1
        conn.reviews[rid] = {"id": rid, "txn_id": txn_id, "level": level,
                             "state": "pending_review", "created_ms": at_ms,
                             "decided_ms": None, "reason": None}
        return rid

    def review_of(self, conn: Tables, txn_id: int) -> Any:
        return _row(next((r for r in conn.reviews.values() if r["txn_id"] == txn_id), None))

    def decide_review(self, conn: Tables, review_id: int, state: str, at_ms: int,
                      reason: str | None = None) -> None:
        conn.reviews[review_id].update(state=state, decided_ms=at_ms, reason=reason)

    def add_event(self, conn: Tables, txn_id: int | None, at_ms: int, kind: str,
                  **detail: Any) -> None:
        conn.events.append((txn_id, at_ms, kind, json.dumps(detail, sort_keys=True)))


class MemoryBook:
    """:class:`host.pipeline.ports.Book` over :class:`Tables`."""

    def post_group(self, conn: Tables, entries: Sequence[tuple[str, str, int]], *,
                   currency: str, at_ms: int, reference: str, kind: str = "posting",
                   memo: str = "", reverses: int | None = None,
                   parent_id: int | None = None) -> int:
        debits = sum(m for _, s, m in entries if s == "D")
        credits = sum(m for _, s, m in entries if s == "C")
        if debits != credits or any(not isinstance(m, int) or m <= 0 for *_, m in entries):
            raise MemoryStorageError(f"unbalanced or non-positive group: {list(entries)}")
        gid = len(conn.groups) + 1
        conn.groups[gid] = {"id": gid, "reference": reference, "kind": kind, "memo": memo,
                            "currency": currency, "entries": [tuple(e) for e in entries],
                            "reverses": reverses, "parent_id": parent_id, "at_ms": at_ms}
        return gid

    def effective(self, conn: Tables, group_id: int) -> bool:
        """True unless an effective group reverses this one (the SQL ledger's rule)."""
        return not any(self.effective(conn, g["id"]) for g in conn.groups.values()
                       if g["reverses"] == group_id)

    def reverse(self, conn: Tables, group_id: int, *, at_ms: int, reference: str,
                kind: str = "reversal", memo: str = "") -> int:
        original = conn.groups.get(group_id)
        if original is None or not self.effective(conn, group_id):
            raise MemoryStorageError(f"posting group {group_id} is missing or reversed")
        mirror = [(a, "C" if s == "D" else "D", m) for a, s, m in original["entries"]]
        return self.post_group(conn, mirror, currency=original["currency"], at_ms=at_ms,
                               reference=reference, kind=kind, memo=memo, reverses=group_id)

    def reverse_reference(self, conn: Tables, reference: str, *, at_ms: int,
                          new_reference: str, kind: str = "reversal",
                          memo: str = "") -> list[int]:
        done = []
        for g in sorted((g for g in conn.groups.values() if g["reference"] == reference),
                        key=lambda g: g["id"], reverse=True):
            if self.effective(conn, g["id"]):
                done.append(self.reverse(conn, g["id"], at_ms=at_ms, reference=new_reference,
                                         kind=kind, memo=memo))
        return done

    def recall(self, conn: Tables, key: str) -> tuple[str, str] | None:
        return conn.answers.get(key)

    def remember(self, conn: Tables, key: str, fingerprint: str, result: str,
                 at_ms: int) -> None:
        if key in conn.answers:
            raise MemoryStorageError(f"answer for {key} stored twice")
        conn.answers[key] = (fingerprint, result)

    @staticmethod
    def balances(conn: Tables) -> dict[str, dict[str, int]]:
        """Net debit (debits - credits) per account per currency."""
        out: dict[str, dict[str, int]] = {}
        for g in conn.groups.values():
            for account, side, amount in g["entries"]:
                per = out.setdefault(account, {})
                per[g["currency"]] = per.get(g["currency"], 0) + (amount if side == "D"
                                                                  else -amount)
        return out


class MemoryStorage:
    """:class:`host.pipeline.ports.Storage` in memory: the tables are the transaction handle."""

    errors: tuple[type[Exception], ...] = ()

    def __init__(self, card_key: bytes = b"\x01" * 32, rrn_prefix: str = "") -> None:
        self.tables = Tables()
        self.store = MemoryStore(rrn_prefix)
        self.ledger = MemoryBook()
        self.card_key = card_key

    @contextmanager
    def begin(self) -> Iterator[Tables]:
        """All or nothing: on an error the tables are put back as they were."""
        with self.savepoint(self.tables) as conn:
            yield conn

    @contextmanager
    def savepoint(self, conn: Tables) -> Iterator[Tables]:
        before = copy.deepcopy(conn)
        try:
            yield conn
        except BaseException:
            for name in vars(before):
                setattr(conn, name, getattr(before, name))
            raise

    def retrying(self, fn: Callable[[], T]) -> T:
        return fn()

    def close(self) -> None:
        """Nothing to release."""
