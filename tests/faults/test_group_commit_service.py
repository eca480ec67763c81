"""Group commit against the real HostService: one COMMIT per batch, per-request savepoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

pytest.importorskip("host.service", reason="the host engine (host.service) has not landed")

from host.clock import SystemClock  # noqa: E402
from host.config import load_config  # noqa: E402
from host.group_commit import batch_runner  # noqa: E402
from host.service import HostService  # noqa: E402
from protocol import Codec  # noqa: E402
from scenarios.loadgen.workload import build_plans  # noqa: E402

NO_RESPONSE_PAN = "4000000000000119"  # the shipped catalogue's silent issuer


def sales(pan: str = "4761739001010119", n: int = 3, tid: str = "GC") -> list[dict[str, str]]:
    codec = Codec()
    [plan] = build_plans(codec, 1, {"sale": 1}, mid="BENCHMERCHANT01", currency="CNY",
                         pan=pan, seed=1, tid_prefix=tid)
    return [codec.decode(plan.templates["sale"].render(f"{i:06d}"))[1] for i in range(1, n + 1)]


@pytest.fixture
def service(tmp_path: Path) -> Any:
    svc = HostService(load_config(None), str(tmp_path / "ledger.db"), SystemClock(),
                      allow_unknown_terminals=True)
    commits: list[int] = []
    event.listen(svc.engine, "commit", lambda conn: commits.append(1))
    svc.commits = commits
    yield svc
    svc.close()


def test_a_batch_is_one_commit_and_every_request_is_booked(service: Any) -> None:
    """Three sales in one batch: three approvals with distinct RRNs, one COMMIT, ledger clean."""
    run = batch_runner(service)
    assert run is not None
    # The merchant's first request enrols it for settlement in a commit of its own: once.
    run(sales(n=1, tid="GW"))
    service.commits.clear()
    replies = run(sales())
    assert [r.response.response_code for r in replies] == ["00", "00", "00"]
    assert len({r.response.rrn for r in replies}) == 3
    assert len(service.commits) == 1
    assert len(service.transactions(tid="GC000001")) == 3
    assert service.verify()["ok"]


def test_a_silent_request_rolls_back_only_its_savepoint(service: Any) -> None:
    """A no-response card inside a batch books nothing; its neighbours are still booked."""
    good = sales(n=2)
    silent = sales(pan=NO_RESPONSE_PAN, n=1, tid="GS")
    replies = batch_runner(service)([good[0], silent[0], good[1]])  # type: ignore[misc]
    assert [r.response is None for r in replies] == [False, True, False]
    assert len(service.transactions(tid="GC000001")) == 2
    assert service.transactions(tid="GS000001") == []
    assert service.verify()["ok"]


def test_a_retransmission_inside_the_same_batch_is_replayed(service: Any) -> None:
    """The same request twice in one batch: booked once, the second answer is the stored one."""
    [sale] = sales(n=1)
    first, second = batch_runner(service)([sale, dict(sale)])  # type: ignore[misc]
    assert first.response.rrn == second.response.rrn and second.log.get("replayed")
    assert len(service.transactions(tid="GC000001")) == 1


def test_group_commit_can_be_switched_off(service: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """POSLAB_GROUP_COMMIT=0 gives no batch runner: one commit per request, as before."""
    monkeypatch.setenv("POSLAB_GROUP_COMMIT", "0")
    assert batch_runner(service) is None
