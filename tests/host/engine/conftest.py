"""Fixtures for the in-process engine tests: a simulated clock, the default config, services
on a fresh SQLite file, and :class:`Term`, a tiny terminal that builds request field dicts."""

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
    CardData,
    EntryMode,
    Money,
    NetworkCode,
    NetworkRequest,
    OriginalData,
    Pan,
    ReconciliationRequest,
    RefundReason,
    RefundRequest,
    ReversalRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.messages import AuthorizationRequest, CompletionAdvice

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
    """A scripted terminal: numbers STANs, stamps DE7 from the clock, sends to a service."""

    def __init__(self, service: HostService, clock: ManualClock, tid: str = TID,
                 mid: str = MID) -> None:
        self.service, self.clock, self.tid, self.mid = service, clock, tid, mid
        self.stan = 0
        self._sent = 0

    def next_stan(self) -> str:
        """The next trace number."""
        self.stan += 1
        return f"{self.stan:06d}"

    def de7(self) -> str:
        """A transmission time unique per message of this terminal (clock + counter)."""
        self._sent += 1
        now = self.clock.now()
        return now.strftime("%m%d%H") + f"{self._sent // 60 % 60:02d}{self._sent % 60:02d}"

    def _base(self) -> dict[str, Any]:
        return {"stan": self.next_stan(), "terminal_id": self.tid, "merchant_id": self.mid,
                "transmitted_at": self.de7()}

    @staticmethod
    def card(pan: str = VISA) -> CardData:
        """Manually keyed card data."""
        return CardData(EntryMode.MANUAL, pan=Pan(pan), expiry="3012")

    def sale(self, amount: int, pan: str = VISA, cur: str = "CNY") -> dict[str, str]:
        """An 0200 purchase."""
        return SaleRequest(card=self.card(pan), amount=Money(amount, cur),
                           local_time="100000", local_date="0302", **self._base()).to_fields()

    def auth(self, amount: int, pan: str = VISA) -> dict[str, str]:
        """An 0100 authorization."""
        return AuthorizationRequest(card=self.card(pan), amount=Money(amount, "CNY"),
                                    **self._base()).to_fields()

    def completion(self, amount: int, approval_code: str, rrn: str | None = None
                   ) -> dict[str, str]:
        """An 0220 completion of a hold."""
        return CompletionAdvice(card=None, amount=Money(amount, "CNY"),
                                approval_code=approval_code, original_rrn=rrn,
                                **self._base()).to_fields()

    def refund(self, amount: int, rrn: str | None, pan: str = VISA, cur: str = "CNY",
               reason: RefundReason = RefundReason.OTHER) -> dict[str, str]:
        """An 0200 refund of the sale with RRN ``rrn``."""
        return RefundRequest(card=self.card(pan), amount=Money(amount, cur), original_rrn=rrn,
                             reason=reason, **self._base()).to_fields()

    def void(self, rrn: str, amount: int, voids_refund: bool = False) -> dict[str, str]:
        """An 0200 void."""
        return VoidRequest(card=None, amount=Money(amount, "CNY"), original_rrn=rrn,
                           voids_refund=voids_refund, **self._base()).to_fields()

    def reversal(self, original: dict[str, str], repeat: bool = False) -> dict[str, str]:
        """An 0400 (0401) for ``original``: its STAN, DE3, DE4, DE49, a new DE7."""
        return ReversalRequest(
            stan=original["11"], terminal_id=original["41"], merchant_id=original["42"],
            transmitted_at=self.de7(), processing_code=original["3"],
            amount=Money(int(original["4"]), "CNY" if original["49"] == "156" else "USD"),
            repeat=repeat,
            original=OriginalData(original["t"], original["11"], original.get("7", "0" * 10)),
        ).to_fields()

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
