"""The storage port: what the pipeline needs of a database, as :class:`typing.Protocol` types.

The core depends on these, never on a database library. :class:`Storage` opens transactions
(``begin``; ``savepoint`` nests one request inside a group commit) and hands out the two
repositories that work inside one: :class:`TxnStore` (terminals, batches, transaction rows,
tombstones, reviews, the event log) and :class:`Book` (the double-entry ledger and the request
keys it remembers). A transaction is an opaque handle (:data:`Tx`) that the core passes back
to the repositories and never looks into; records are read by attribute (``row.state``,
``row.amount_minor``, the columns of :mod:`host.store`).

:class:`host.sql_storage.SqlStorage` implements the port on SQLAlchemy Core for SQLite and
PostgreSQL; the composition root (:mod:`host.runtime`) opens it and gives it to the service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeAlias, TypeVar

from host.rules import OriginalView

T = TypeVar("T")
#: An open transaction of the adapter (the SQL adapter's is a SQLAlchemy connection).
Tx: TypeAlias = Any
#: A row read back, its columns as attributes.
Record: TypeAlias = Any
#: One ledger entry: (account, side "D"/"C", amount in minor units).
Entry = tuple[str, str, int]


class TxnStore(Protocol):
    """Terminals, batches, transaction rows, tombstones, reviews and the event log."""

    def terminal(self, conn: Tx, tid: str, *, lock: bool = False) -> Record | None:
        """The terminal's row (read locked with ``lock``), or None."""

    def ensure_terminal(self, conn: Tx, tid: str, mid: str, at_ms: int, *, enrolled: bool,
                        locked: Record | None = None) -> Record:
        """The terminal's row, created when missing."""

    def set_signed_on(self, conn: Tx, tid: str, signed_on: bool) -> None:
        """Record a sign-on or sign-off."""

    def open_batch(self, conn: Tx, tid: str, mid: str, at_ms: int, business_date: str, *,
                   locked: Record | None = None) -> int:
        """The terminal's open batch, opened when there is none."""

    def current_batch(self, conn: Tx, tid: str) -> Record | None:
        """The terminal's open batch, or None."""

    def closed_batch(self, conn: Tx, tid: str, number: str) -> Record | None:
        """The terminal's closed batch of this number, or None."""

    def batch_open(self, conn: Tx, batch_id: int | None) -> bool:
        """True when the batch exists and is open."""

    def batch_row(self, conn: Tx, batch_id: int | None) -> Record | None:
        """A batch by id, or None."""

    def last_batch_number(self, conn: Tx, tid: str, *,
                          before: int | None = None) -> str | None:
        """The number of the terminal's most recently closed numbered batch (opened before
        batch id ``before``, when given), or None."""

    def batches_since_number(self, conn: Tx, tid: str) -> list[Record]:
        """The terminal's batches opened after its last closed numbered batch, oldest first
        (closed by a settlement cut-off, and the open one)."""

    def batch_members(self, conn: Tx, batch_id: int) -> list[Record]:
        """The transactions of a batch, oldest first."""

    def batch_totals(self, conn: Tx, batch_id: int, currency: str) -> dict[str, int]:
        """Debit and credit counts and amounts of a batch in one currency."""

    def close_batch(self, conn: Tx, batch_id: int, *, number: str | None, at_ms: int,
                    closed_by: str, totals: Mapping[str, object]) -> None:
        """Close a batch with its totals."""

    def new_txn(self, conn: Tx) -> tuple[int, str, str]:
        """Reserve the next transaction id, never used before: (id, RRN, approval code)."""

    def insert_txn(self, conn: Tx, **values: Any) -> tuple[int, str, str]:
        """Insert a transaction row whole (``id``, ``rrn``, ``approval_code`` from
        :meth:`new_txn`, reserved here when ``id`` is missing): (id, RRN, approval code)."""

    def update_txn(self, conn: Tx, txn_id: int, **values: Any) -> None:
        """Update a transaction row's mutable columns."""

    def txn_by_id(self, conn: Tx, txn_id: int | None, *, lock: bool = False) -> Record | None:
        """A transaction by id."""

    def txn_by_rrn(self, conn: Tx, rrn: str, *, lock: bool = False) -> Record | None:
        """A transaction by RRN."""

    def txn_by_request_key(self, conn: Tx, key: str) -> Record | None:
        """The transaction stored under a request key."""

    def find_hold(self, conn: Tx, tid: str, mid: str, approval_code: str,
                  rrn: str | None) -> Record | None:
        """The authorization hold a completion names."""

    def merchant_refunded(self, conn: Tx, mid: str, business_date: str) -> int:
        """What the merchant refunded on a business date, in minor units."""

    def view(self, conn: Tx, row: Record) -> OriginalView:
        """What the rules need to know of a transaction."""

    def original(self, conn: Tx, rrn: str) -> tuple[Record, OriginalView] | tuple[None, None]:
        """The transaction with this RRN (locked) and its :meth:`view`, or (None, None)."""

    def reversal_target(self, conn: Tx, mid: str, tid: str, stan: str,
                        business_dates: Sequence[str]) -> Record | None:
        """The newest non-declined transaction a reversal without DE90 matches."""

    def mark_reversal(self, conn: Tx, mid: str, tid: str, stan: str, business_date: str,
                      target_id: int | None, at_ms: int) -> None:
        """Record a reversal (a tombstone when ``target_id`` is None)."""

    def tombstoned(self, conn: Tx, mid: str, tid: str, stan: str,
                   business_dates: Sequence[str]) -> bool:
        """True when a reversal came first for this key on one of the dates."""

    def arrival(self, conn: Tx, tid: str, mid: str, stan: str,
                business_dates: Sequence[str], key: str, *, books: bool = False
                ) -> tuple[Record | None, tuple[str, str] | None, bool]:
        """A request's first reads together: the terminal's row (locked) or None, the
        (fingerprint, answer) stored under the request key or None, and :meth:`tombstoned`.
        ``books``: the request is one that inserts a transaction row (an adapter may reserve
        its id for :meth:`new_txn` in the same read)."""

    def add_review(self, conn: Tx, txn_id: int, level: int, at_ms: int) -> int:
        """Open a review of a held refund; its id."""

    def review_of(self, conn: Tx, txn_id: int) -> Record | None:
        """The review of a refund, or None."""

    def decide_review(self, conn: Tx, review_id: int, state: str, at_ms: int,
                      reason: str | None = None) -> None:
        """Record a review's outcome."""

    def add_event(self, conn: Tx, txn_id: int | None, at_ms: int, kind: str,
                  **detail: Any) -> None:
        """Append to the event log."""


class Book(Protocol):
    """The double-entry ledger, and the answers it remembers per request key."""

    def post_group(self, conn: Tx, entries: Sequence[Entry], *, currency: str, at_ms: int,
                   reference: str, kind: str = "posting", memo: str = "",
                   reverses: int | None = None, parent_id: int | None = None) -> int:
        """Append one balanced posting group; its id."""

    def reverse(self, conn: Tx, group_id: int, *, at_ms: int, reference: str,
                kind: str = "reversal", memo: str = "") -> int:
        """Append the mirror of one group; its id."""

    def reverse_reference(self, conn: Tx, reference: str, *, at_ms: int, new_reference: str,
                          kind: str = "reversal", memo: str = "") -> list[int]:
        """Mirror every effective group of a reference; the mirrors' ids."""

    def recall(self, conn: Tx, key: str) -> tuple[str, str] | None:
        """(fingerprint, stored answer) of a request key, or None."""

    def remember(self, conn: Tx, key: str, fingerprint: str, result: str, at_ms: int) -> None:
        """Store a request key's answer."""


class Storage(Protocol):
    """A host database: transactions and the repositories that work inside them.

    :ivar errors: the exceptions that mean the database failed (the request is answered 96
        and nothing of it is committed).
    """

    errors: tuple[type[Exception], ...]

    @property
    def card_key(self) -> bytes:
        """The key card numbers are hashed with."""

    @property
    def store(self) -> TxnStore:
        """The transaction store."""

    @property
    def ledger(self) -> Book:
        """The ledger."""

    def begin(self) -> AbstractContextManager[Tx]:
        """A write transaction, committed when the block ends without an error."""

    def savepoint(self, conn: Tx) -> AbstractContextManager[Tx]:
        """A nested transaction inside ``conn``, rolled back alone on an error."""

    def retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (one whole write transaction), again when the database asks for a retry
        (a busy database, a deadlock victim, a concurrent twin that committed first)."""

    def close(self) -> None:
        """Release the connections."""
