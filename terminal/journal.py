"""The terminal's persistent journal: trace counter, batch number, transactions, reversals.

Where it lives is a :class:`JournalStore`: :class:`JsonFileStore` is one JSON file in the data
directory, rewritten atomically (write a temporary file, then ``os.replace``) after every
change, so a crash leaves either the old or the new journal; :class:`MemoryStore` keeps nothing
on disk (scenario runs, the load generator, tests). It never holds a full PAN, track data or a
PIN: cards are kept as masked PAN and deck name.

A request that was sent but never answered stays ``REVERSAL_PENDING`` until a reversal for it
is acknowledged (store and forward): the terminal retries it before its next transaction. An
advice is not reversed but sent again: a CUP refund (an 0220) without an answer stays
``ADVICE_PENDING`` until the host answers a repeat.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

from protocol.messages import BatchTotals

JOURNAL_FILE = "journal.json"
_FORMAT = 1


class JournalError(ValueError):
    """The journal file cannot be read; the message names the file and the problem."""


class TxnKind(enum.StrEnum):
    """What the terminal did."""

    SALE = "sale"
    REFUND = "refund"
    VOID = "void"
    AUTHORIZE = "authorize"  # an 0100 hold (scenarios send them; the keypad does not)
    COMPLETION = "completion"  # the capture of a hold (scenarios send it; the keypad does not)

    @property
    def heading(self) -> str:
        """Receipt and screen heading."""
        return self.value.upper()


DEBIT_KINDS = frozenset({TxnKind.SALE, TxnKind.COMPLETION})
"""What batch totals count as debits, as the host does: sales and captured holds."""


class TxnStatus(enum.StrEnum):
    """Where a transaction stands from the terminal's point of view."""

    PENDING = "pending"  # sent, no answer yet: unknown at the host
    APPROVED = "approved"
    DECLINED = "declined"
    REVERSAL_PENDING = "reversal_pending"  # no answer; reversal not yet acknowledged
    REVERSED = "reversed"  # no answer; the host acknowledged the reversal
    ADVICE_PENDING = "advice_pending"  # an advice (CUP 0220 refund) without an answer: repeated


@dataclass
class Txn:
    """One journal line. Amounts in minor units; the PAN only masked."""

    seq: int
    kind: TxnKind
    stan: str
    batch: str
    amount_minor: int
    currency: str
    processing_code: str
    transmitted_at: str  # DE7 MMDDhhmmss
    local_time: str  # ISO 8601, terminal local time
    masked_pan: str | None = None
    card_name: str | None = None
    entry_mode: str | None = None
    status: TxnStatus = TxnStatus.PENDING
    response_code: str | None = None
    rule: str | None = None
    explanation: str | None = None
    rrn: str | None = None
    approval_code: str | None = None
    business_date: str | None = None
    host_date: str | None = None  # DE13 MMDD of the answer: the host's date, merchant's zone
    host_time: str | None = None  # DE12 hhmmss of the answer
    original_rrn: str | None = None
    reason: str | None = None
    operator: str | None = None
    voided: bool = False
    settled: bool = False
    reversal_attempts: int = 0
    late_responses: int = 0
    receipt: str | None = None
    #: DE39 of the reversal this line waits for, when it is not the usual "no answer" (CUP:
    #: ``A0``, the answer failed its MAC check); a reversal sent again after a restart keeps it.
    reversal_reason: str | None = None
    #: the request's fields as sent, less the card's data, PIN and MAC, on a profile whose
    #: repeats and reversals must match the request field for field (CUP: the host knows a
    #: repeat by its key and content); None on the generic profile.
    sent: dict[str, str] | None = None

    @property
    def approved(self) -> bool:
        """Approved by the host (and still effective unless voided)."""
        return self.status is TxnStatus.APPROVED

    @property
    def effective(self) -> bool:
        """Approved and not voided: counts in the batch totals."""
        return self.approved and not self.voided and self.kind is not TxnKind.VOID

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Txn:
        """Rebuild a line from its JSON object (unknown keys ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["kind"] = TxnKind(str(kw["kind"]))
        kw["status"] = TxnStatus(str(kw.get("status", "pending")))
        return cls(**kw)  # type: ignore[arg-type]


@dataclass
class _State:
    stan: int = 0
    batch: int = 1
    business_date: str | None = None
    txns: list[Txn] = field(default_factory=list)


class JournalStore(Protocol):
    """Where a journal's state is kept: ``load()`` the saved document (None: nothing saved yet),
    ``save(doc)`` after every change. The document is the JSON object of format 1."""

    def load(self) -> dict[str, Any] | None:
        """The saved document, or None."""
        ...

    def save(self, doc: dict[str, Any]) -> None:
        """Persist ``doc`` durably enough for this store's purpose."""
        ...


class JsonFileStore:
    """``data_dir/journal.json``, replaced atomically on every save (the terminal's format)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / JOURNAL_FILE

    def load(self) -> dict[str, Any] | None:
        """The document on disk, or None when there is no journal file yet."""
        if not self.path.exists():
            return None
        doc = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc

    def save(self, doc: dict[str, Any]) -> None:
        """Write ``doc`` to a temporary file, then move it over the journal."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


class MemoryStore:
    """A journal that lives as long as the process: nothing is written anywhere.

    :ivar first_stan: the trace number the first request gets (scenarios seed it).
    """

    def __init__(self, first_stan: int = 1) -> None:
        self.first_stan = first_stan

    def load(self) -> dict[str, Any] | None:
        """A fresh journal whose next STAN is :attr:`first_stan`."""
        return {"format": _FORMAT, "stan": (self.first_stan - 1) % 999999, "batch": 1,
                "txns": []}

    def save(self, doc: dict[str, Any]) -> None:
        """Nothing to do: the journal object holds the state."""


class Journal:
    """The journal of one terminal, kept in ``data_dir/journal.json`` unless another
    :class:`JournalStore` is given."""

    def __init__(self, data_dir: Path | None = None, store: JournalStore | None = None) -> None:
        if store is None:
            if data_dir is None:
                raise ValueError("a journal needs a data directory or a store")
            store = JsonFileStore(data_dir)
        self.store = store
        self.data_dir = data_dir if data_dir is not None else Path(".")
        self.path = data_dir / JOURNAL_FILE if data_dir is not None else None
        self._state = self._load()

    @classmethod
    def in_memory(cls, first_stan: int = 1) -> Journal:
        """A journal kept only in memory, its first STAN ``first_stan``."""
        return cls(store=MemoryStore(first_stan))

    # -- persistence -------------------------------------------------------------------------

    def _load(self) -> _State:
        where = self.path or "in memory"
        try:
            doc = self.store.load()
            if doc is None:
                return _State()
            if doc.get("format") != _FORMAT:
                raise ValueError(f"unsupported format {doc.get('format')!r}")
            state = _State(int(doc["stan"]), int(doc["batch"]), doc.get("business_date"),
                           [Txn.from_json(t) for t in doc["txns"]])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise JournalError(f"journal {where} is unreadable: {exc}. Move it away "
                               "to start a fresh journal.") from None
        for txn in state.txns:
            # Sent before a crash and never answered: the host may hold it, so reverse it.
            if txn.status is TxnStatus.PENDING:
                txn.status = TxnStatus.REVERSAL_PENDING
        return state

    def save(self) -> None:
        """Hand the whole journal to the store (atomically replaced on disk)."""
        if isinstance(self.store, MemoryStore):
            return  # the hot path of scenario and load runs: no document to build
        doc = {"format": _FORMAT, "stan": self._state.stan, "batch": self._state.batch,
               "business_date": self._state.business_date,
               "txns": [asdict(t) for t in self._state.txns]}
        self.store.save(doc)

    # -- counters ----------------------------------------------------------------------------

    def next_stan(self) -> str:
        """Allocate the next trace number (000001-999999, then wraps) and persist it."""
        self._state.stan = self._state.stan % 999999 + 1
        self.save()
        return f"{self._state.stan:06d}"

    @property
    def batch_number(self) -> str:
        """The open batch, six digits."""
        return f"{self._state.batch:06d}"

    @property
    def business_date(self) -> str | None:
        """The last business date (MMDD) the host returned."""
        return self._state.business_date

    def set_business_date(self, mmdd: str | None) -> None:
        """Remember the host's business date."""
        if mmdd and mmdd != self._state.business_date:
            self._state.business_date = mmdd
            self.save()

    def use_batch(self, batch: str) -> None:
        """Open ``batch`` (six digits) as the host assigned it, e.g. in a CUP sign-on answer."""
        if int(batch) != self._state.batch:
            self._state.batch = int(batch)
            self.save()

    def close_batch(self) -> str:
        """Mark the open batch settled, open the next one and return its number."""
        for txn in self.open_batch():
            txn.settled = True
        self._state.batch = self._state.batch % 999999 + 1
        self.save()
        return self.batch_number

    # -- transactions ------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Txn]:
        return iter(self._state.txns)

    def __len__(self) -> int:
        return len(self._state.txns)

    def add(self, txn: Txn) -> Txn:
        """Append a line (its ``seq`` is assigned here) and persist."""
        txn = replace(txn, seq=len(self._state.txns) + 1)
        self._state.txns.append(txn)
        self.save()
        return txn

    def update(self, txn: Txn) -> None:
        """Persist changes made to a line obtained from this journal."""
        self.save()

    def get(self, seq: int) -> Txn:
        """The line with this sequence number."""
        return self._state.txns[seq - 1]

    def by_rrn(self, rrn: str) -> Txn | None:
        """The approved sale or refund the host gave this RRN."""
        for txn in self._state.txns:
            if txn.rrn == rrn and txn.kind is not TxnKind.VOID:
                return txn
        return None

    def find(self, stan: str, batch: str | None = None) -> Txn | None:
        """The line with this STAN (in this batch, by default the open one)."""
        want = batch or self.batch_number
        for txn in reversed(self._state.txns):
            if txn.stan == stan and txn.batch == want:
                return txn
        return None

    def remaining_minor(self, sale: Txn) -> int:
        """What is left to refund of ``sale``: its amount less its effective refunds."""
        refunded = sum(t.amount_minor for t in self._state.txns
                       if t.kind is TxnKind.REFUND and t.effective
                       and t.original_rrn == sale.rrn)
        return max(sale.amount_minor - refunded, 0)

    def refundable(self) -> list[Txn]:
        """Approved, unvoided sales with something left to refund, newest first."""
        return [t for t in reversed(self._state.txns)
                if t.kind is TxnKind.SALE and t.effective and t.rrn
                and self.remaining_minor(t) > 0]

    def voidable(self) -> list[Txn]:
        """Sales and refunds of the open batch that can still be voided, newest first."""
        return [t for t in self.void_choices() if t.batch == self.batch_number
                and not t.settled]

    def void_choices(self) -> list[Txn]:
        """Every sale and refund a void could name, newest first: the open batch's voidable
        ones and those of settled batches (the host refuses those, and trainers show it)."""
        refunded = {t.original_rrn for t in self._state.txns
                    if t.kind is TxnKind.REFUND and t.effective}
        return [t for t in reversed(self._state.txns)
                if t.effective and t.rrn
                and not (t.kind is TxnKind.SALE and t.rrn in refunded)]

    def open_batch(self) -> list[Txn]:
        """Lines of the open batch, oldest first."""
        return [t for t in self._state.txns if t.batch == self.batch_number and not t.settled]

    def pending_reversals(self) -> list[Txn]:
        """Unanswered requests whose reversal the host has not yet acknowledged."""
        return [t for t in self._state.txns if t.status is TxnStatus.REVERSAL_PENDING]

    def pending_advices(self) -> list[Txn]:
        """Advices (CUP 0220 refunds) the host has not answered yet, oldest first."""
        return [t for t in self._state.txns if t.status is TxnStatus.ADVICE_PENDING]

    def totals(self, currency: str) -> BatchTotals:
        """Batch totals of the open batch in ``currency``: debits are sales and completions
        (the host counts a captured hold as a sale), credits refunds."""
        mine = [t for t in self.open_batch() if t.effective and t.currency == currency]
        sales = [t for t in mine if t.kind in DEBIT_KINDS]
        refunds = [t for t in mine if t.kind is TxnKind.REFUND]
        return BatchTotals(currency, len(sales), sum(t.amount_minor for t in sales),
                           len(refunds), sum(t.amount_minor for t in refunds))
