"""A hypothesis state machine over the request pipeline and its ledger.

Sales, refunds with amounts clustered around the remaining refundable balance (remaining-2 ..
remaining+2, plus uniform ones), exact and different-content duplicates, reversals with
repeats, unknown reversals, voids, batch closes and clock ticks; after every step the ledger
and store invariants hold and the balances equal a plain-dict model.

The machine runs twice: on the pure path (:class:`host.pipeline.core.Pipeline` over the
in-memory storage of ``memory_storage.py``: the decisions alone, fast, so it takes many
examples) and on the real service over SQLite (the same decisions through SQL, with the
database's own integrity check after every step; fewer examples).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from host.clock import ManualClock
from host.config import HostConfig, load_config
from host.pipeline.core import Pipeline
from host.service import HostService

from .conftest import MID, Term
from .memory_storage import MemoryBook, MemoryStorage

PAYABLE = "merchant_payable:" + MID


@dataclass
class SaleModel:
    """What the model believes about one sale."""

    request: dict[str, str]
    rrn: str
    amount: int
    effective: bool = True
    refunds: dict[str, int] = field(default_factory=dict)  # refund RRN -> amount (effective)
    batch_open: bool = True

    @property
    def remaining(self) -> int:
        return self.amount - sum(self.refunds.values()) if self.effective else 0


@dataclass
class RefundModel:
    """An approved refund and the request that made it."""

    request: dict[str, str]
    rrn: str
    sale: SaleModel
    amount: int
    batch_open: bool = True


def _rules_config() -> HostConfig:
    """The shipped config with ``synchronous=NORMAL``: this machine checks rules, balances and
    invariants, not durability (the crash and power-loss tests do that), so it need not wait
    for an fsync at every one of its hundreds of commits."""
    config = load_config()
    host = config.host.model_copy(update={"sqlite_synchronous": "NORMAL"})
    return config.model_copy(update={"host": host})


# tmpfs where there is one: nothing here has to survive the process, and on a busy disk the
# WAL checkpoints' fsyncs were most of this test's time.
_SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None
CONFIG = _rules_config()


class LedgerMachine(RuleBasedStateMachine):
    """Drives one request pipeline and mirrors it in plain dicts; subclasses give the backend
    (``service``, ``balances``, ``remaining``, ``check``)."""

    sales = Bundle("sales")
    refunds = Bundle("refunds")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
        self.service = self.open()
        self.term = Term(self.service, self.clock)  # type: ignore[arg-type]
        self.all_sales: list[SaleModel] = []
        self.all_refunds: list[RefundModel] = []
        self.sent: list[tuple[dict[str, str], object]] = []

    def open(self) -> HostService | Pipeline:
        """The pipeline under test."""
        raise NotImplementedError

    def balances(self) -> dict[str, dict[str, int]]:
        """Net debit per account and currency."""
        raise NotImplementedError

    def remaining(self, rrn: str) -> int:
        """What can still be refunded of the sale ``rrn``."""
        raise NotImplementedError

    def check(self) -> None:
        """The backend's own integrity checks."""
        raise NotImplementedError

    def _send(self, fields: dict[str, str]) -> tuple[str, str | None, object]:
        reply = self.service.handle(fields)
        assert reply.response is not None
        self.sent.append((dict(fields), reply.response))
        return reply.response.response_code, getattr(reply.response, "rrn", None), reply.response

    @rule(target=sales, amount=st.integers(min_value=1, max_value=20000))
    def sale(self, amount: int) -> SaleModel:
        req = self.term.sale(amount)
        code, rrn, _ = self._send(req)
        assert code == "00" and rrn is not None
        model = SaleModel(req, rrn, amount)
        self.all_sales.append(model)
        return model

    @rule(target=refunds, sale=sales, delta=st.integers(min_value=-2, max_value=2),
          uniform=st.none() | st.integers(min_value=1, max_value=20000))
    def refund(self, sale: SaleModel, delta: int, uniform: int | None) -> RefundModel:
        amount = uniform if uniform is not None else sale.remaining + delta
        amount = max(amount, 0)
        req = self.term.refund(amount, sale.rrn)
        code, rrn, _ = self._send(req)
        if not sale.effective:
            assert code == "12"
        elif amount == 0:
            assert code == "13"
        elif amount <= sale.remaining:
            assert code == "00", (code, amount, sale.remaining)
            assert rrn is not None
            sale.refunds[rrn] = amount
            model = RefundModel(req, rrn, sale, amount)
            self.all_refunds.append(model)
            return model
        else:
            assert code == "13"
        return RefundModel({}, "", sale, 0)

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def exact_duplicate(self, data: st.DataObject) -> None:
        fields, response = data.draw(st.sampled_from(self.sent))
        before = self.balances()
        reply = self.service.handle(dict(fields))
        assert reply.response == response
        assert self.balances() == before

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def different_duplicate(self, data: st.DataObject) -> None:
        fields, _ = data.draw(st.sampled_from(self.sent))
        if fields.get("t") != "0200":
            return
        changed = dict(fields, **{"4": f"{int(fields['4']) + 1:012d}"})
        before = self.balances()
        reply = self.service.handle(changed)
        assert reply.response is not None and reply.response.response_code == "94"
        assert self.balances() == before

    @rule(sale=consumes(sales), repeats=st.integers(min_value=0, max_value=2))
    def reverse_sale(self, sale: SaleModel, repeats: int) -> None:
        first = self.term.reversal(sale.request)
        code, _, _ = self._send(first)
        if sale.effective and not sale.refunds:
            assert code == "00"  # after a batch close too: a late adjustment
            sale.effective = False
        elif sale.effective and sale.refunds:
            assert code == "12"
        for _ in range(repeats):
            self._send(self.term.reversal(sale.request, repeat=True))

    @rule(refund=consumes(refunds))
    def reverse_refund(self, refund: RefundModel) -> None:
        if not refund.rrn:
            return
        code, _, _ = self._send(self.term.reversal(refund.request))
        if refund.rrn in refund.sale.refunds:
            assert code == "00"
            del refund.sale.refunds[refund.rrn]
        self._send(self.term.reversal(refund.request, repeat=True))

    @rule(amount=st.integers(min_value=1, max_value=5000))
    def unknown_reversal(self, amount: int) -> None:
        ghost = self.term.sale(amount)
        code, _, _ = self._send(self.term.reversal(ghost))
        assert code == "00"
        code, _, _ = self._send(ghost)
        assert code == "12"

    @rule(sale=sales)
    def void(self, sale: SaleModel) -> None:
        code, _, _ = self._send(self.term.void(sale.rrn, sale.amount))
        if sale.effective and sale.batch_open and not sale.refunds:
            assert code == "00"
            sale.effective = False
        else:
            assert code == "12"

    @rule()
    def close_batch(self) -> None:
        code, _, _ = self._send(self.term.settle("000001", (0, 0), (0, 0), after_upload=True))
        assert code == "00"
        for s in self.all_sales:
            s.batch_open = False
        for r in self.all_refunds:
            r.batch_open = False

    @rule(minutes=st.integers(min_value=0, max_value=5))
    def tick(self, minutes: int) -> None:
        self.clock.advance(timedelta(minutes=minutes))

    @invariant()
    def ledger_matches_model(self) -> None:
        self.check()
        expected = sum(s.amount - sum(s.refunds.values()) for s in self.all_sales if s.effective)
        assert -self.balances().get(PAYABLE, {}).get("CNY", 0) == expected
        for s in self.all_sales[-3:]:
            assert self.remaining(s.rrn) == s.remaining


class PureMachine(LedgerMachine):
    """The pipeline over in-memory storage: no database, no settlement desk."""

    def open(self) -> Pipeline:
        self.storage = MemoryStorage()
        return Pipeline(CONFIG, self.storage, self.clock)

    def balances(self) -> dict[str, dict[str, int]]:
        return MemoryBook.balances(self.storage.tables)

    def remaining(self, rrn: str) -> int:
        store, tables = self.storage.store, self.storage.tables
        row = store.txn_by_rrn(tables, rrn)
        assert row is not None
        return store.view(tables, row).remaining_minor

    def check(self) -> None:
        """Each group reversed at most once; no sale refunded beyond its amount."""
        book, tables = self.storage.ledger, self.storage.tables
        for gid in tables.groups:
            reversers = [g["id"] for g in tables.groups.values() if g["reverses"] == gid]
            assert sum(book.effective(tables, r) for r in reversers) <= 1, gid
        for row in tables.txns.values():
            if row["kind"] == "sale":
                view = self.storage.store.view(tables, self.storage.store.txn_by_id(tables,
                                                                                    row["id"]))
                assert view.refunded_minor <= view.amount_minor, row


class SqlMachine(LedgerMachine):
    """The real service on a fresh SQLite file, checked by ``verify()`` after every step."""

    def open(self) -> HostService:
        self.dir = tempfile.mkdtemp(prefix="poslab-sm-", dir=_SCRATCH)
        return HostService(CONFIG, str(Path(self.dir) / "h.db"), self.clock)

    def teardown(self) -> None:
        self.service.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def balances(self) -> dict[str, dict[str, int]]:
        return self.service.balances()  # type: ignore[union-attr]

    def remaining(self, rrn: str) -> int:
        view = self.service.transaction(rrn)  # type: ignore[union-attr]
        assert view is not None
        return int(view["remaining_minor"])

    def check(self) -> None:
        report = self.service.verify()  # type: ignore[union-attr]
        assert report["ok"], report["violations"]


_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much]
TestPureMachine = PureMachine.TestCase
TestPureMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                                    suppress_health_check=_HEALTH)
TestSqlMachine = SqlMachine.TestCase
TestSqlMachine.settings = settings(max_examples=10, stateful_step_count=25, deadline=None,
                                   suppress_health_check=_HEALTH)
