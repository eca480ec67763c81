"""Merchants partitioned across hosts on one database: ``[[merchants]] partition`` and
``[server] partition`` in the config, the request path's routing decision, and settlement and
notifications kept to the host's own merchants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, select

from host.clock import ManualClock
from host.config import ConfigError, HostConfig, load_config
from host.service import HostService
from host.settlement.jobs import settlement
from host.settlement.notifications import Outbox, notification
from host.sql_storage import SqlStorage
from host.store import event, txn
from tests.host.engine.conftest import VISA, Term, config_with, rc

SH = ZoneInfo("Asia/Shanghai")
A, B, C = "MERCHANTAAAAAAA", "MERCHANTBBBBBBB", "MERCHANTCCCCCCC"
MERCHANTS = [
    {"id": A, "terminals": ["TERMA001"], "partition": "p1"},
    {"id": B, "terminals": ["TERMB001"], "partition": "p2"},
    {"id": C, "terminals": ["TERMC001"]},
]
NOT_HERE = ("03", "UNKNOWN_MERCHANT:NOT_HERE")


def partitioned(partition: str | None) -> HostConfig:
    """The test merchants, on a host serving ``partition`` (None: no partition)."""
    server = {} if partition is None else {"partition": partition}
    return config_with(merchants=MERCHANTS, server=server)


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "host.toml"
    path.write_text(text)
    return str(path)


def test_two_partitions_and_an_unserved_one_load(tmp_path: Path) -> None:
    """Merchants of two partitions, one of a partition no host names, and one without: a
    valid config, whatever partition the host itself serves."""
    path = _write(tmp_path, '[server]\npartition = "p1"\n'
                            '[[merchants]]\nid = "M1"\npartition = "p1"\n'
                            '[[merchants]]\nid = "M2"\npartition = "p2"\n'
                            '[[merchants]]\nid = "M3"\npartition = "nobody-serves_9"\n'
                            '[[merchants]]\nid = "M4"\n')
    config = load_config(path)
    assert config.partition == "p1"
    assert [m.partition for m in config.merchants] == ["p1", "p2", "nobody-serves_9", None]


@pytest.mark.parametrize(("text", "key"), [
    ('[[merchants]]\nid = "M1"\npartition = "P1"\n', "merchants[0].partition"),
    ('[[merchants]]\nid = "M1"\n[[merchants]]\nid = "M2"\npartition = ""\n',
     "merchants[1].partition"),
    ('[[merchants]]\nid = "M1"\npartition = "much-too-long-a-name"\n', "merchants[0].partition"),
    ('[server]\npartition = "-p1"\n', "server.partition"),
])
def test_a_bad_partition_name_is_refused_naming_file_and_key(tmp_path: Path, text: str,
                                                             key: str) -> None:
    """Upper case, empty, too long or a leading dash: a ConfigError naming the file and the
    dotted key."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: {key}: " in str(caught.value)


@pytest.mark.parametrize(("partition", "mid", "why"), [
    ("p1", B, f"merchant {B} belongs to partition p2; this host serves partition p1"),
    ("p1", C, f"merchant {C} belongs to no partition; this host serves partition p1"),
    (None, A, f"merchant {A} belongs to partition p1; this host serves the merchants "
              "without a partition"),
    ("p1", A, None),
    (None, C, None),
    ("p1", "UNLISTEDMERCH01", None),
])
def test_the_routing_decision(partition: str | None, mid: str, why: str | None) -> None:
    """A host serves the listed merchants of its own partition (none: those without one);
    the refusal names both partitions; an unlisted merchant is not refused for its partition."""
    config = partitioned(partition)
    listed = config.merchant(mid)
    assert (config.foreign_partition(listed) if listed else None) == why


def test_another_partitions_merchant_is_declined_and_nothing_stored(
        make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """On host p1, A's sale is approved; B's (partition p2) and C's (no partition) get 03
    UNKNOWN_MERCHANT:NOT_HERE with the reason in the log, and book nothing."""
    service = make_service(partitioned("p1"))
    own = Term(service, clock, tid="TERMA001", mid=A)
    rrn = own.approved_sale(1000)
    before = service.transactions()
    for tid, mid, theirs in (("TERMB001", B, "partition p2"), ("TERMC001", C, "no partition")):
        other = Term(service, clock, tid=tid, mid=mid)
        reply = other.send(other.sale(1000, VISA))
        assert rc(reply) == NOT_HERE
        assert reply.log["reason"] == (f"merchant {mid} belongs to {theirs}; "
                                       "this host serves partition p1")
        refund = other.send(other.refund(500, rrn))
        assert rc(refund) == NOT_HERE
    assert service.transactions() == before
    assert service.verify()["ok"]


def test_development_mode_serves_unknown_merchants_on_any_host(
        make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """With unknown terminals allowed, a partitioned host enrols and serves an unlisted
    merchant, and still declines a listed merchant of another partition."""
    service = make_service(partitioned("p2"), allow_unknown_terminals=True)
    stranger = Term(service, clock, tid="NEW00001", mid="NEWMERCHANT0001")
    assert rc(stranger.send(stranger.sale(700))) == ("00", None)
    foreign = Term(service, clock, tid="NEW00002", mid=A)
    assert rc(foreign.send(foreign.sale(700))) == NOT_HERE


def test_a_host_without_partition_is_unchanged(make_service: Callable[..., HostService],
                                               clock: ManualClock) -> None:
    """The shipped config (no partitions anywhere) approves its demo merchant as before."""
    service = make_service(load_config())
    term = Term(service, clock)
    assert rc(term.send(term.sale(100))) == ("00", None)


def _jobs(clock: ManualClock) -> set[str]:
    """The keys of the jobs pending on a host's clock, as ``GET /clock`` lists them."""
    return {str(event["key"]) for event in clock.describe()["pending_events"]}  # type: ignore[attr-defined]


def test_a_partition_on_sqlite_is_served_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """SQLite takes a partitioned host, with one warning at start that partitions pay only on
    PostgreSQL; a host without a partition gets none."""
    for name, db in (("p1", "a.db"), (None, "b.db")):
        SqlStorage.open(str(tmp_path / db), partitioned(name)).close()
    warned = [r.getMessage() for r in caplog.records if "on SQLite" in r.getMessage()]
    assert warned == ["[server] partition 'p1' on SQLite: partitions share one database only "
                      "on PostgreSQL; with SQLite the hosts take turns on its one write lock, "
                      "so a second host adds no throughput (routing still works)"]


def test_each_host_settles_only_its_own_merchants(tmp_path: Path) -> None:
    """Hosts p1 and p2 on one database, each taking a sale of its own merchant: each
    schedules the cut-off and the funding of its own merchant only, each merchant is settled
    and funded once, and each host's stages, settlements and notifications name its chain."""
    db = str(tmp_path / "shared.db")
    start = datetime(2026, 11, 26, 10, 0, tzinfo=SH)  # a Thursday
    clocks = {"p1": ManualClock(start), "p2": ManualClock(start)}
    hosts = {name: HostService(partitioned(name), db, clock) for name, clock in clocks.items()}
    try:
        assert (_jobs(clocks["p1"]), _jobs(clocks["p2"])) == ({f"cutoff:{A}"}, {f"cutoff:{B}"})
        for name, tid, mid in (("p1", "TERMA001", A), ("p2", "TERMB001", B)):
            Term(hosts[name], clocks[name], tid=tid, mid=mid).approved_sale(2000)
        for clock in clocks.values():
            clock.set(datetime(2026, 11, 26, 23, 30, tzinfo=SH))  # past the cut-off
        desk = hosts["p1"].settlement
        assert desk is not None
        ids = {r["merchant_id"]: r["id"] for r in desk.settlements()}
        assert sorted(ids) == [A, B]
        assert _jobs(clocks["p1"]) == {f"cutoff:{A}", f"fund:{ids[A]}"}
        assert _jobs(clocks["p2"]) == {f"cutoff:{B}", f"fund:{ids[B]}"}
        for clock in clocks.values():
            clock.set(datetime(2026, 11, 27, 12, 0, tzinfo=SH))  # funding day, 09:00 passed
        assert sorted(r["status"] for r in desk.settlements()) == ["funded", "funded"]
        assert hosts["p2"].verify()["ok"]
        with hosts["p1"].engine.connect() as conn:
            stages = conn.execute(select(txn.c.merchant_id, event.c.chain)
                                  .join_from(event, txn, event.c.txn_id == txn.c.id)).all()
            settled = conn.execute(select(settlement.c.merchant_id, settlement.c.chain)).all()
            notified = conn.execute(select(notification.c.merchant_id,
                                           notification.c.chain)).all()
        assert set(stages) == set(settled) == set(notified) == {(A, "p1"), (B, "p2")}
    finally:
        for host in hosts.values():
            host.close()


def test_notifications_are_delivered_by_the_merchants_host(tmp_path: Path) -> None:
    """The outbox of host p1 hands its webhook and file only A's notifications; the host
    without a partition takes C's and those of merchants the config does not list."""
    engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    outbox = Outbox(engine, tmp_path / "notices.jsonl")
    at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    with engine.begin() as conn:
        for mid in (A, B, C, "UNLISTEDMERCH01"):
            outbox.add(conn, "merchant_funded", at, merchant_id=mid, amount_minor=100,
                       currency="CNY")

    def delivered_to(partition: str | None) -> list[Any]:
        outbox.owns = partitioned(partition).settles
        return [row["merchant_id"] for row in outbox.undelivered(5)]

    assert delivered_to("p1") == [A]
    assert delivered_to(None) == [C, "UNLISTEDMERCH01"]
    outbox.owns = partitioned("p2").settles
    assert outbox.flush_file() == 1
    assert B in (tmp_path / "notices.jsonl").read_text()
    engine.dispose()
