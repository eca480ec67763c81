"""Fixtures for the console and event-stream tests: a real host (shipped config, simulated
clock, SQLite) in-process on the shared reactor, and a terminal that talks to it over TCP."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from host.clock import ManualClock
from host.config import load_config
from host.logs import MessageLog
from host.runtime import HostRuntime
from protocol import CardData, Codec, EntryMode, Money, Pan, RefundRequest, SaleRequest
from scenarios.wire import IsoClient

TOKEN = "console-test-token"
START = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # a Monday, 10:00 in Shanghai
PAN = "4111111111111111"  # the shipped deck's "Visa approve"
TID, MID, CUR = "TERM0001", "MERCHANT0000001", "CNY"


@dataclass
class LiveHost:
    """A started real host and a terminal connection to it."""

    runtime: HostRuntime
    clock: ManualClock
    client: IsoClient

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.admin_port}"

    async def sale(self, stan: str, amount_minor: int) -> dict[str, str]:
        """Send a sale over TCP; its answer (asserted present)."""
        answer = await self.client.request(SaleRequest(
            stan=stan, terminal_id=TID, merchant_id=MID, transmitted_at=_de7(self.clock),
            card=CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="3012"),
            amount=Money(amount_minor, CUR)).to_fields(), 5.0)
        assert answer is not None, "the host did not answer the sale"
        return answer

    async def refund(self, stan: str, rrn: str, amount_minor: int) -> dict[str, str]:
        """Send a refund of ``rrn`` over TCP; its answer."""
        answer = await self.client.request(RefundRequest(
            stan=stan, terminal_id=TID, merchant_id=MID, transmitted_at=_de7(self.clock),
            card=CardData(EntryMode.MANUAL, pan=Pan(PAN), expiry="3012"),
            amount=Money(amount_minor, CUR), original_rrn=rrn).to_fields(), 5.0)
        assert answer is not None, "the host did not answer the refund"
        return answer


def _de7(clock: ManualClock) -> str:
    return clock.now().strftime("%m%d%H%M%S")


@pytest.fixture
def host_db(tmp_path: Path) -> str:
    """The live host's database: an SQLite file (modules may override with both backends)."""
    return str(tmp_path / "ledger.db")


@pytest.fixture
def live_host(run: Callable[..., Any], host_db: str) -> Iterator[LiveHost]:
    """A real host on port 0 with the shipped config and a frozen simulated clock."""
    clock = ManualClock(START)
    runtime = HostRuntime(log=MessageLog(io.StringIO()))
    run(runtime.start(load_config(None), host_db, clock, admin_token=TOKEN))
    client = IsoClient("127.0.0.1", runtime.iso_port, Codec("iso87-ascii"))
    try:
        yield LiveHost(runtime, clock, client)
    finally:
        client.close()
        run(runtime.stop())
