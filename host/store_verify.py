"""Checks that the store's history was not rewritten: row MACs, and state against the ledger.

Each check returns violations ``{"invariant": ..., "detail": ...}`` naming the transaction,
event or request concerned (composed with the store's own checks by :func:`store_checks`):

``TXN``     every transaction's fixed columns (amount, PAN hash, request key ...) still match
            the MAC made with the chain key at insert; its approval code is the one its id
            gives; no transaction was deleted while its ledger groups remain
``STATE``   the mutable ``state`` agrees with the ledger: an approved or authorized
            transaction's group is effective and its amount and currency are the
            transaction's; a voided, reversed, completed or rejected one's group was mirrored by
            a group of that kind; a declined one booked nothing. ``review_state`` agrees with
            its review. The event log holds the event each state change writes.
``EVENT``   every audit event still matches its MAC
``REQUEST`` every transaction has its stored reply, and every stored reply of a financial
            request (MTI 01xx/02xx) has its transaction

The settlement desk's tables are checked by :mod:`host.settlement.verify`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, select

from host.domain import ReviewState, TxnKind, TxnState
from host.ledger.anchor import Anchor
from host.ledger.book import Group
from host.ledger.chain import ChainKey, key_path, read_key
from host.ledger.schema import request_log, stored_columns
from host.ledger.verify import (
    ExtraCheck,
    Violation,
    effective_groups,
    read_groups,
    verify_database,
)
from host.settlement.verify import settlement_checks
from host.store import (
    TXN_FIXED,
    approval_code_for,
    check_batch_membership,
    check_closed_batches,
    check_one_txn_per_key,
    check_refunds_within_sale,
    event,
    event_mac,
    guarded,
    review,
    txn,
    txn_mac,
    txn_reference,
)

#: The state a transaction takes when its group is mirrored by a group of this kind.
_UNDONE_BY: dict[str, str] = {"void": TxnState.VOIDED, "reversal": TxnState.REVERSED,
                              "hold_release": TxnState.COMPLETED,
                              "review_rejected": TxnState.REJECTED}
#: The event each state change writes on the transaction.
_STATE_EVENT = {"voided": "voided", "reversed": "reversed", "completed": "completed",
                "rejected": "review_rejected"}
#: Kinds whose own group carries the transaction's amount.
_SAME_AMOUNT = (TxnKind.SALE, TxnKind.AUTH, TxnKind.REFUND, TxnKind.COMPLETION)
#: Request key prefixes (MTI class) of requests that always book a transaction.
_FINANCIAL = ("010|", "020|", "022|")


def _v(invariant: str, detail: str) -> Violation:
    return {"invariant": invariant, "detail": detail}


def history_checks(key: ChainKey) -> tuple[Callable[[Connection], list[Violation]], ...]:
    """The checks of this module, bound to the chain key."""

    def check_history(conn: Connection) -> list[Violation]:
        """TXN, STATE, EVENT, REQUEST: the store's rows against their MACs and the ledger."""
        return _History(conn, key).run()

    checks: tuple[ExtraCheck, ...] = (check_history, *settlement_checks(key))
    return checks


class _History:
    """One pass over transactions, events, reviews, stored replies and groups."""

    def __init__(self, conn: Connection, key: ChainKey) -> None:
        self.conn, self.key = conn, key
        self.out: list[Violation] = []
        self.groups = {g.id: g for g in read_groups(conn)}
        self.effective = effective_groups(list(self.groups.values()))
        self.reversers: dict[int, list[Group]] = defaultdict(list)
        self.by_reference: dict[str, list[Group]] = defaultdict(list)
        for g in self.groups.values():
            if g.reverses is not None:
                self.reversers[g.reverses].append(g)
            self.by_reference[g.reference].append(g)
        self.events: dict[int, set[str]] = defaultdict(set)

    def run(self) -> list[Violation]:
        self._events()
        txns = self.conn.execute(select(txn).order_by(txn.c.id)).all()
        reviews = {int(r.txn_id): r.state for r in self.conn.execute(
            select(review.c.txn_id, review.c.state)).all()}
        for row in txns:
            self._txn(row, reviews.get(int(row.id)))
        self._orphan_groups({int(r.id) for r in txns})
        self._requests({r.request_key for r in txns if r.kind != TxnKind.ADJUSTMENT})
        return self.out

    def _events(self) -> None:
        for r in self.conn.execute(select(*stored_columns(self.conn, event))
                                   .order_by(event.c.id)).all():
            tid = None if r.txn_id is None else int(r.txn_id)
            if r.mac != event_mac(self.key, tid, int(r.at_ms), r.kind, r.detail):
                self.out.append(_v("EVENT", f"event {r.id} ({r.kind}) was altered: it no "
                                            f"longer matches its MAC"))
            if tid is not None:
                self.events[tid].add(r.kind)

    def _txn(self, row: Any, review_state: str | None) -> None:
        tid = int(row.id)
        name = f"txn {tid} ({row.kind} {row.rrn})"
        values = {c: _plain(getattr(row, c)) for c in TXN_FIXED}
        if row.mac != txn_mac(self.key, values):
            self.out.append(_v("TXN", f"{name} was altered: its fixed columns (amount, card, "
                                      f"request ...) no longer match its MAC"))
        if row.approval_code is not None and row.approval_code != approval_code_for(tid):
            self.out.append(_v("TXN", f"{name} has approval code {row.approval_code}, not the "
                                      f"one its id gives"))
        kinds = self.events[tid]
        if not kinds & {"decided", "adjustment"}:
            self.out.append(_v("STATE", f"{name} has no 'decided' event in the event log"))
        want_event = _STATE_EVENT.get(row.state)
        if want_event is not None and want_event not in kinds:
            self.out.append(_v("STATE", f"{name} is {row.state} but the event log has no "
                                        f"'{want_event}' event for it"))
        if row.state == TxnState.DECLINED:
            if row.group_id is not None or self.by_reference.get(txn_reference(tid)):
                self.out.append(_v("STATE", f"{name} is declined but booked ledger groups"))
            return
        self._state(row, name)
        self._review_state(row, name, review_state)

    def _state(self, row: Any, name: str) -> None:
        gid = None if row.group_id is None else int(row.group_id)
        group = self.groups.get(gid) if gid is not None else None
        if gid is None or group is None:
            self.out.append(_v("STATE", f"{name} is {row.state} but its ledger group {gid} "
                                        f"does not exist"))
            return
        if row.kind == TxnKind.ADJUSTMENT:
            return  # books the mirror of another transaction's group; its state never moves
        if group.reference != txn_reference(int(row.id)):
            self.out.append(_v("STATE", f"{name} points at group {gid}, which belongs to "
                                        f"{group.reference}"))
        if row.kind in _SAME_AMOUNT and (group.amount_minor, group.currency) != (
                int(row.amount_minor), row.currency):
            self.out.append(_v("STATE", f"{name} records {row.amount_minor} {row.currency} but "
                                        f"its ledger group {gid} books {group.amount_minor} "
                                        f"{group.currency}"))
        expected: str
        if self.effective[gid]:
            expected = TxnState.AUTHORIZED if row.kind == TxnKind.AUTH else TxnState.APPROVED
        else:
            undo = next(g for g in self.reversers[gid] if self.effective[g.id])
            expected = _UNDONE_BY.get(undo.kind, f"undone by a {undo.kind} group")
        if row.state != expected:
            self.out.append(_v("STATE", f"{name} is marked {row.state} but the ledger says "
                                        f"{expected} (group {gid})"))

    def _review_state(self, row: Any, name: str, review_state: str | None) -> None:
        if row.review_state is None and review_state is None:
            return
        released = any(g.kind == "review_release"
                       for g in self.by_reference.get(txn_reference(int(row.id)), []))
        if row.review_state != review_state or (review_state == ReviewState.APPROVED) != released:
            self.out.append(_v("STATE", f"{name} has review state {row.review_state} but its "
                                        f"review is {review_state} and the ledger "
                                        f"{'released' if released else 'did not release'} it"))

    def _orphan_groups(self, txn_ids: set[int]) -> None:
        for reference in self.by_reference:
            if reference.startswith("txn:") and reference[4:].isdigit() and \
                    int(reference[4:]) not in txn_ids:
                self.out.append(_v("TXN", f"ledger groups of {reference} exist but the "
                                          f"transaction row is gone"))

    def _requests(self, txn_keys: set[str]) -> None:
        logged = set(self.conn.execute(select(request_log.c.key)).scalars().all())
        for k in sorted(txn_keys - logged):
            self.out.append(_v("REQUEST", f"the stored reply of transaction request {k!r} is "
                                          f"missing"))
        for k in sorted(logged - txn_keys):
            if k.startswith(_FINANCIAL):
                self.out.append(_v("REQUEST", f"request {k!r} has a stored reply but its "
                                              f"transaction is missing"))


def _plain(value: Any) -> Any:
    """A column value as the MAC saw it at insert (integers as int, text as str)."""
    return int(value) if isinstance(value, int) else value


def store_checks(key: ChainKey) -> list[ExtraCheck]:
    """Every check of the host's tables under the chain ``key`` (each skipped on a database
    without the store's tables): run by ``HostService.verify()`` and
    :func:`verify_host_database`."""
    plain = (check_one_txn_per_key, check_refunds_within_sale, check_batch_membership,
             check_closed_batches)
    return [guarded(c) for c in (*plain, *history_checks(key))]


def verify_host_database(db_url: str, key: ChainKey | None = None,
                         anchor: Anchor | Sequence[Anchor] | None = None
                         ) -> dict[str, Any]:
    """:func:`host.ledger.verify_database` with the store's and settlement's checks too: what
    ``poslab-host ledger verify`` runs. ``key`` defaults to the key file found for ``db_url``."""
    key = key if key is not None else read_key(key_path(db_url))
    return verify_database(db_url, key, store_checks(key), anchor)
