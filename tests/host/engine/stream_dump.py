"""Everything a fixed request stream leaves behind, as text: ``python -m
tests.host.engine.stream_dump OUT DB`` (DB a SQLite path, or a PostgreSQL URL whose schema is
empty).

It runs one deterministic stream through :class:`host.service.HostService` on the simulated
clock, with a fixed chain key and card-hash key: network messages, sales, repeats (the same and
changed), refunds (referenced, unreferenced, over the remainder, to another card, held for
review), voids, issuer declines, a silent card, a bad card number, a foreign currency, an
authorization and its completion, reversals (of a sale, repeated, and before the original), an
unknown terminal enrolled in development mode, a settlement, then the bench's sale/refund/void
mix in group-commit batches with repeats inside a batch. OUT gets every answer (fields, log
line) and every row of every table, sorted.

Two versions of the host that should store, answer and log the same thing give the same OUT
(``cmp``): how a change meant to cost less CPU is shown to change nothing else.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

import scenarios.loadgen.workload as workload
from host.clock import ManualClock
from host.group_commit import batch_runner
from host.service import HostService, Reply
from protocol import Codec, NetworkCode, RefundReason
from tests.host.engine.conftest import MC, START, Term, config_with

CHAIN_KEY = bytes(range(32)).hex()
CARD_KEY = "ab" * 32


class _FixedNow(datetime):
    """The bench templates' DE7 source, held at the simulated clock's start."""

    @classmethod
    def now(cls, tz: Any = None) -> _FixedNow:  # noqa: ARG003
        return cls.fromtimestamp(START.timestamp(), UTC)


def dump(out: Path, db: str) -> bool:
    """Run the stream on ``db`` and write what it left to ``out``; the ledger verify's verdict."""
    keyfile = Path(db + ".chain-key")
    if db.startswith("postgresql"):
        keyfile = out.with_suffix(".chain-key")
        os.environ["POSLAB_CHAIN_KEY_FILE"] = str(keyfile)
    else:
        for old in Path(db).parent.glob(Path(db).name + "*"):
            old.unlink()
    keyfile.write_text(CHAIN_KEY + "\n")
    keyfile.chmod(0o600)
    clock = ManualClock(START)
    svc = HostService(config_with(host={"card_hash_key": CARD_KEY}), db, clock,
                      allow_unknown_terminals=True)
    lines: list[str] = []

    def rec(tag: str, reply: Reply) -> Reply:
        resp = reply.response
        lines.append(json.dumps([tag, None if resp is None else resp.to_fields(), reply.log,
                                 reply.silent], sort_keys=True, default=str))
        return reply

    _scripted(svc, clock, rec)
    _bench_mix(svc, clock, rec)
    ok = bool(svc.verify()["ok"])
    lines.append(json.dumps(["verify", ok]))
    with svc.engine.connect() as conn:
        for name in sorted(inspect(conn).get_table_names()):
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            lines.append(f"== {name} {len(rows)}")
            lines.extend(sorted(json.dumps([repr(v) for v in row]) for row in rows))
    svc.close()
    out.write_text("\n".join(lines) + "\n")
    return ok


def _scripted(svc: HostService, clock: ManualClock, rec: Any) -> None:
    t = Term(svc, clock)
    unknown = Term(svc, clock, tid="UNKN0001", mid="MERCHANT0000009")
    for i in range(3):
        clock.advance(timedelta(seconds=7))
        rec("sign-on", t.send(t.network()))
        rec("echo", t.send(t.network(NetworkCode.ECHO)))
        sale = t.sale(1000 + i)
        rrn = rec("sale", t.send(sale)).response.rrn
        rec("repeat", t.send(sale))
        rec("repeat-changed", t.send({**sale, "4": "000000009999"}))
        rec("refund", t.send(t.refund(100, rrn, reason=RefundReason.RETURN)))
        rec("refund-over", t.send(t.refund(100000, rrn)))
        rec("refund-unreferenced", t.send(t.refund(100, None)))
        rec("refund-other-card", t.send(t.refund(100, rrn, pan=MC)))
        rec("refund-review", t.send(t.refund(600000, t.approved_sale(900000))))
        rec("void", t.send(t.void(t.approved_sale(500), 500)))
        rec("void-wrong-amount", t.send(t.void(t.approved_sale(500), 400)))
        rec("zero", t.send(t.sale(0)))
        rec("declined", t.send(t.sale(100, pan="4000000000000002")))
        rec("funds", t.send(t.sale(20000, pan="4000000000009995")))
        rec("expired", t.send(t.sale(100, pan="4000000000000069")))
        rec("silent", t.send(t.sale(100, pan="4000000000000119")))
        rec("luhn", t.send(t.sale(100, pan="4111111111111112")))
        rec("currency", t.send(t.sale(100, cur="USD")))
        auth = rec("auth", t.send(t.auth(5000))).response
        rec("completion", t.send(t.completion(4000, auth.approval_code, auth.rrn)))
        reversed_sale = t.sale(777)
        rec("sale", t.send(reversed_sale))
        rec("reversal", t.send(t.reversal(reversed_sale)))
        rec("reversal-repeat", t.send(t.reversal(reversed_sale, repeat=True)))
        late = t.sale(778)
        rec("reversal-first", t.send(t.reversal(late)))
        rec("after-tombstone", t.send(late))
        rec("unknown-terminal", unknown.send(unknown.sale(300)))
        rec("settlement", t.send(t.settle("000001", (1, 1000), (0, 0))))


def _bench_mix(svc: HostService, clock: ManualClock, rec: Any) -> None:
    run = batch_runner(svc)
    codec = Codec()
    saved = workload.datetime
    workload.datetime = _FixedNow  # type: ignore[misc]
    try:
        plans = workload.build_plans(codec, 12, workload.parse_mix(workload.DEFAULT_MIX),
                                     mid="BENCHMERCHANT01", currency="CNY",
                                     pan=workload.DEFAULT_PAN, seed=11, tid_prefix="PS")
    finally:
        workload.datetime = saved  # type: ignore[misc]
    for b in range(60):
        clock.advance(timedelta(milliseconds=300))
        sent = []
        for plan in plans[:10]:
            kind, raw, target = plan.next_request()
            sent.append((plan, kind, target, codec.decode(raw)[1]))
        fields = [f for *_, f in sent]
        replies = run(fields + fields[:3] if b % 7 == 3 else fields)  # repeats in a batch
        for (plan, kind, target, _), reply in zip(sent, replies, strict=False):
            resp = reply.response
            ok = resp is not None and resp.response_code == "00"
            plan.settle(kind, target, ok, getattr(resp, "rrn", None))
        for reply in replies:
            rec("bench", reply)
        plans[:] = plans[10:] + plans[:10]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.host.engine.stream_dump OUT DB")
    sys.exit(0 if dump(Path(sys.argv[1]), sys.argv[2]) else 1)
