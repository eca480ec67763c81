"""Fixtures for the in-process engine tests: a simulated clock, the default config, services
on a fresh SQLite file, and :class:`Term`, a scripted terminal whose requests come from the
real terminal session (:class:`terminal.session.TerminalSession`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from host.clock import ManualClock
from host.config import HostConfig, load_config, parse_config
from host.service import HostService, Reply
from protocol import (
    BatchTotals,
    EntryMode,
    Money,
    NetworkCode,
    NetworkRequest,
    Pan,
    ReconciliationRequest,
    RefundReason,
)
from protocol.messages import CompletionAdvice, OriginalData, ReversalRequest
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.flow import Draft, Original
from terminal.journal import Journal, Txn, TxnKind
from terminal.session import TerminalSession

VISA = "4111111111111111"
MC = "5555555555554444"
MID = "MERCHANT0000001"
TID = "TERM0001"
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, a Monday


@pytest.fixture
def clock() -> ManualClock:
    """A simulated clock at 2026-03-02 10:00 Asia/Shanghai."""
    return ManualClock(START)


@pytest.fixture
def config() -> HostConfig:
    """The shipped default configuration."""
    return load_config()


def config_with(**sections: Any) -> HostConfig:
    """The default config with some tables replaced (e.g. refund={"max_count": 2})."""
    import tomllib

    from host.config import default_config_text

    data = tomllib.loads(default_config_text())
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    return parse_config(data, "<test>")


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A fresh SQLite database path."""
    return str(tmp_path / "host.db")


@pytest.fixture
def make_service(db: str, clock: ManualClock) -> Iterator[Callable[..., HostService]]:
    """Build services on the test database; all are closed at the end."""
    made: list[HostService] = []

    def make(config: HostConfig | None = None, **kw: Any) -> HostService:
        svc = HostService(config or load_config(), kw.pop("db_url", db), clock, **kw)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


@pytest.fixture
def service(make_service: Callable[..., HostService]) -> HostService:
    """A service on the default config."""
    return make_service()


@pytest.fixture
def term(service: HostService, clock: ManualClock) -> Term:
    """The demo terminal talking to ``service``."""
    return Term(service, clock)


class Term:
    """A scripted terminal: numbers STANs, stamps DE7 from the clock, sends to a service.

    Requests are built and journalled by a real :class:`TerminalSession` (in memory), so a
    reversal here is the terminal's own 0400/0401 for the journalled original.
    """

    def __init__(self, service: HostService, clock: ManualClock, tid: str = TID,
                 mid: str = MID) -> None:
        self.service, self.clock, self.tid, self.mid = service, clock, tid, mid
        self.stan = 0
        self._sent = 0
        self.session = TerminalSession(TerminalConfig(terminal_id=tid, merchant_id=mid),
                                       Journal.in_memory(), clock=self._stamp)
        self._lines: dict[tuple[str, str], Txn] = {}

    def next_stan(self) -> str:
        """The next trace number."""
        self.stan += 1
        return f"{self.stan:06d}"

    def _stamp(self) -> datetime:
        """The clock's hour with a per-message counter as minute and second: DE7 is unique
        per message of this terminal."""
        self._sent += 1
        now = self.clock.now().astimezone(UTC)
        return now.replace(minute=self._sent // 60 % 60, second=self._sent % 60)

    def de7(self) -> str:
        """A transmission time unique per message of this terminal (clock + counter)."""
        return self._stamp().strftime("%m%d%H%M%S")

    def _base(self) -> dict[str, Any]:
        return self.session.ids(stan=self.next_stan())

    @staticmethod
    def card(pan: str = VISA) -> Card:
        """A test card, keyed in manually."""
        return Card("test card", Pan(pan), "3012", "")

    def _begin(self, draft: Draft) -> dict[str, str]:
        pending = self.session.begin(draft, stan=self.next_stan())
        fields = pending.request.to_fields()
        self._lines[(fields["11"], fields["7"])] = pending.txn
        return fields

    def sale(self, amount: int, pan: str = VISA, cur: str = "CNY") -> dict[str, str]:
        """An 0200 purchase."""
        return self._begin(Draft(TxnKind.SALE, Money(amount, cur), self.card(pan),
                                 EntryMode.MANUAL))

    def auth(self, amount: int, pan: str = VISA) -> dict[str, str]:
        """An 0100 authorization."""
        return self._begin(Draft(TxnKind.AUTHORIZE, Money(amount, "CNY"), self.card(pan),
                                 EntryMode.MANUAL))

    def completion(self, amount: int, approval_code: str, rrn: str | None = None
                   ) -> dict[str, str]:
        """An 0220 completion of a hold."""
        return CompletionAdvice(card=None, amount=Money(amount, "CNY"),
                                approval_code=approval_code, original_rrn=rrn,
                                **self._base()).to_fields()

    def refund(self, amount: int, rrn: str | None, pan: str = VISA, cur: str = "CNY",
               reason: RefundReason = RefundReason.OTHER) -> dict[str, str]:
        """An 0200 refund of the sale with RRN ``rrn``."""
        return self._begin(Draft(TxnKind.REFUND, Money(amount, cur), self.card(pan),
                                 EntryMode.MANUAL, Original(rrn) if rrn else None, reason))

    def void(self, rrn: str, amount: int, voids_refund: bool = False) -> dict[str, str]:
        """An 0200 void."""
        kind = TxnKind.REFUND if voids_refund else TxnKind.SALE
        return self._begin(Draft(TxnKind.VOID, Money(amount, "CNY"),
                                 original=Original(rrn, kind)))

    def reversal(self, original: dict[str, str], repeat: bool = False) -> dict[str, str]:
        """The terminal's 0400 (0401) for ``original``: its STAN, DE3, DE4, DE49, a new DE7."""
        line = self._lines.get((original["11"], original["7"]))
        if line is not None:
            return self.session.reversal_request(line, repeat=repeat).to_fields()
        # a message the session did not build (an 0220 completion): reverse it by its fields
        return ReversalRequest(
            stan=original["11"], terminal_id=original["41"], merchant_id=original["42"],
            transmitted_at=self.de7(), processing_code=original["3"],
            amount=Money(int(original["4"]), "CNY"), repeat=repeat,
            original=OriginalData(original["t"], original["11"], original["7"])).to_fields()

    def settle(self, batch: str, sales: tuple[int, int], refunds: tuple[int, int],
               after_upload: bool = False) -> dict[str, str]:
        """An 0500 with (count, amount) of sales and refunds."""
        return ReconciliationRequest(
            batch_number=batch, after_upload=after_upload,
            totals=BatchTotals("CNY", sales[0], sales[1], refunds[0], refunds[1]),
            **self._base()).to_fields()

    def network(self, code: NetworkCode = NetworkCode.SIGN_ON) -> dict[str, str]:
        """An 0800."""
        return NetworkRequest(code=code, **self._base()).to_fields()

    def send(self, fields: dict[str, str]) -> Reply:
        """Hand the fields to the service."""
        return self.service.handle(fields)

    def approved_sale(self, amount: int, pan: str = VISA) -> str:
        """Make a sale that must be approved; returns its RRN."""
        reply = self.send(self.sale(amount, pan))
        assert reply.response is not None and reply.response.response_code == "00"
        rrn = getattr(reply.response, "rrn", None)
        assert isinstance(rrn, str)
        return rrn


def rc(reply: Reply) -> tuple[str | None, str | None]:
    """(DE39, DE44) of a reply."""
    assert reply.response is not None
    return reply.response.response_code, reply.response.rule
