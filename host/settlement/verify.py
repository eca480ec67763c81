"""Checks that the settlement-timing history was not rewritten: settled items, settlements,
refund postings and notifications against the transactions, the ledger and their MACs.

Run by ``poslab-host ledger verify`` through :func:`host.store_verify.history_checks` on a
database with the settlement desk's tables. Each violation names the row concerned:

``SETTLED``     every settled item matches a captured transaction (kind, merchant, amount,
                currency, batch) and that transaction's ledger group and merchant leg; an item
                marked adjusted belongs to a transaction that is no longer effective; every
                item belongs to a settlement of its batch and currency
``SETTLEMENT``  every settlement still matches its MAC; its sales and refunds equal the sum of
                its items; its net adds up; a real batch's content hash is the batch's; a funded
                settlement's ledger group books exactly its fees and payout, a closed one has
                none; per merchant and currency the adjustments settled equal the items marked
                adjusted; no funding group outlives its settlement
``POSTING``     every refund posting still matches its MAC, matches an approved refund, its
                ledger group and its settled item, and belongs to its settlement; every settled
                refund has its posting
``NOTICE``      every notification says what its refund, posting or settlement says; a posted
                refund has its ``refund_posted`` notification and a settled one none; a funded
                settlement has its ``merchant_funded``; an approved refund its
                ``refund_approved``
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, inspect, select

from host.domain import ReviewState, Side, TxnKind
from host.ledger.accounts import merchant_payable
from host.ledger.chain import ChainKey
from host.ledger.schema import ledger_entry, stored_columns
from host.ledger.verify import Violation, effective_groups, read_groups
from host.settlement.book import settled_item
from host.settlement.fees import Figures
from host.settlement.jobs import (
    funding_entries,
    posting_mac,
    refund_posting,
    settlement,
    settlement_mac,
)
from host.settlement.notifications import notification
from host.store import batch, txn, txn_reference

_CAPTURED = {TxnKind.SALE: TxnKind.SALE, TxnKind.COMPLETION: TxnKind.SALE,
             TxnKind.REFUND: TxnKind.REFUND}
_FIGURES = ("sales_count", "sales_minor", "refunds_count", "refunds_minor",
            "adjustments_count", "adjustments_minor", "fees_minor")


def settlement_checks(key: ChainKey) -> tuple[Callable[[Connection], list[Violation]], ...]:
    """The checks of this module bound to the chain key (each a no-op without the tables)."""

    def check_settlement(conn: Connection) -> list[Violation]:
        """SETTLED, SETTLEMENT, POSTING, NOTICE: settlement history against the ledger."""
        if not inspect(conn).has_table(settlement.name):
            return []
        return _Settlements(conn, key).run()

    return (check_settlement,)


def _v(invariant: str, detail: str) -> Violation:
    return {"invariant": invariant, "detail": detail}


def _mac_problem(mac: Callable[[ChainKey, Any], str], key: ChainKey, row: Any) -> str | None:
    if row.mac is None:
        return "carries no MAC"
    if row.mac != mac(key, row._mapping):
        return "was altered: it no longer matches its MAC"
    return None


class _Settlements:
    """One pass over the desk's tables, with the transactions and groups they point at."""

    def __init__(self, conn: Connection, key: ChainKey) -> None:
        self.key = key
        self.out: list[Violation] = []
        self.txns = {int(r.id): r for r in conn.execute(select(txn)).all()}
        self.by_rrn = {r.rrn: r for r in self.txns.values() if r.rrn is not None}
        self.groups = {g.id: g for g in read_groups(conn)}
        self.effective = effective_groups(list(self.groups.values()))
        self.by_reference: dict[str, list[int]] = defaultdict(list)
        for g in self.groups.values():
            self.by_reference[g.reference].append(g.id)
        self.legs: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
        for e in conn.execute(select(ledger_entry).order_by(ledger_entry.c.id)).all():
            self.legs[int(e.group_id)].append((e.account, e.side, int(e.amount_minor)))
        self.batch_hash = {int(r.id): r.content_hash for r in
                           conn.execute(select(batch.c.id, batch.c.content_hash)).all()}
        self.items = conn.execute(select(settled_item).order_by(settled_item.c.txn_id)).all()
        self.item_of = {int(i.txn_id): i for i in self.items}
        self.settlements = conn.execute(select(*stored_columns(conn, settlement))
                                        .order_by(settlement.c.id)).all()
        self.settlement_of = {f"settlement:{s.id}": s for s in self.settlements}
        self.postings = {r.rrn: r for r in conn.execute(select(refund_posting)).all()}
        self.notices = (conn.execute(select(*stored_columns(conn, notification))
                                     .order_by(notification.c.id)).all()
                        if inspect(conn).has_table(notification.name) else None)

    def run(self) -> list[Violation]:
        self._items()
        self._settlements()
        self._postings()
        if self.notices is not None:
            self._notices()
        return self.out

    # -- settled items ----------------------------------------------------------------------

    def _items(self) -> None:
        labels = {(s.batch, s.currency) for s in self.settlements}
        for item in self.items:
            name = f"settled item of txn {item.txn_id} ({item.kind} {item.amount_minor} " \
                   f"{item.currency}, batch {item.batch})"
            row = self.txns.get(int(item.txn_id))
            problem = self._item_problem(item, row)
            if problem:
                self.out.append(_v("SETTLED", f"{name} {problem}"))
            if (item.batch, item.currency) not in labels:
                self.out.append(_v("SETTLED", f"{name} belongs to no settlement of its batch "
                                              f"and currency"))

    def _item_problem(self, item: Any, row: Any) -> str | None:
        if row is None or _CAPTURED.get(row.kind) != item.kind:
            return "matches no captured transaction"
        if (row.merchant_id, int(row.amount_minor), row.currency) != (
                item.merchant_id, int(item.amount_minor), item.currency):
            return (f"disagrees with its transaction ({row.merchant_id} {row.amount_minor} "
                    f"{row.currency})")
        if "/late/" in item.batch:
            if row.kind != TxnKind.REFUND or not item.batch.startswith(f"{row.merchant_id}/late/"):
                return "sits in a late batch, where only released refunds of its merchant go"
        elif item.batch != f"{row.terminal_id}/{row.batch_id}":
            return f"names another batch than its transaction's ({row.terminal_id}/{row.batch_id})"
        gid = None if row.group_id is None else int(row.group_id)
        group = self.groups.get(gid) if gid is not None else None
        side = Side.CREDIT if item.kind == TxnKind.SALE else Side.DEBIT
        leg = (merchant_payable(item.merchant_id), side, int(item.amount_minor))
        if group is None or group.reference != txn_reference(int(row.id)) or (
                group.amount_minor, group.currency) != (int(item.amount_minor), item.currency) \
                or leg not in self.legs[group.id]:
            return f"has no matching ledger group (group {gid} must book {leg[1]} {leg[2]} " \
                   f"on {leg[0]})"
        if item.adjusted and self.effective[group.id]:
            return "is marked adjusted but its transaction's ledger group is still effective"
        return None

    # -- settlements ------------------------------------------------------------------------

    def _settlements(self) -> None:
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        adjusted: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for item in self.items:
            amount = int(item.amount_minor)
            total = sums[(item.batch, item.currency)]
            offset = 0 if item.kind == TxnKind.SALE else 2
            total[offset] += 1
            total[offset + 1] += amount
            if item.adjusted:
                mine = adjusted[(item.merchant_id, item.currency)]
                mine[0] += 1
                mine[1] += -amount if item.kind == TxnKind.SALE else amount
        settled_adjustments: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for s in self.settlements:
            self._settlement(s, sums[(s.batch, s.currency)])
            mine = settled_adjustments[(s.merchant_id, s.currency)]
            mine[0] += int(s.figures.get("adjustments_count", 0))
            mine[1] += int(s.figures.get("adjustments_minor", 0))
        for who in sorted(set(adjusted) | set(settled_adjustments)):
            if adjusted[who] != settled_adjustments[who]:
                self.out.append(_v("SETTLEMENT", f"merchant {who[0]} {who[1]}: settlements "
                                                 f"hold adjustments {settled_adjustments[who]} "
                                                 f"(count, amount) but the items marked "
                                                 f"adjusted give {adjusted[who]}"))
        for reference in sorted(self.by_reference):
            if reference.startswith("settlement:") and reference not in self.settlement_of:
                self.out.append(_v("SETTLEMENT", f"ledger group of {reference} exists but the "
                                                 f"settlement row is gone"))

    def _settlement(self, s: Any, items: list[int]) -> None:
        name = f"settlement {s.id} ({s.batch} {s.currency})"
        problem = _mac_problem(settlement_mac, self.key, s)
        if problem:
            self.out.append(_v("SETTLEMENT", f"{name} {problem}"))
        fig = s.figures
        stated = [int(fig.get(k, 0)) for k in _FIGURES[:4]]
        if stated != items:
            self.out.append(_v("SETTLEMENT", f"{name} states sales and refunds {stated} (count, "
                                             f"amount, count, amount) but its items sum to "
                                             f"{items}"))
        figures = Figures(**{k: int(fig.get(k, 0)) for k in _FIGURES})
        if figures.net_minor != fig.get("net_minor"):
            self.out.append(_v("SETTLEMENT", f"{name}: its net does not add up"))
        if "/late/" not in s.batch:
            bid = s.batch.rsplit("/", 1)[-1]
            recorded = self.batch_hash.get(int(bid)) if bid.isdigit() else None
            if recorded != s.content_hash:
                self.out.append(_v("SETTLEMENT", f"{name} records another content hash than "
                                                 f"its batch"))
        self._funding(s, name, figures)

    def _funding(self, s: Any, name: str, figures: Figures) -> None:
        gids = self.by_reference.get(f"settlement:{s.id}", [])
        want = sorted(funding_entries(figures, s.merchant_id))
        if s.status == "closed":
            if gids:
                self.out.append(_v("SETTLEMENT", f"{name} is marked closed but its payout was "
                                                 f"booked (group {gids[0]})"))
            return
        if s.status != "funded":
            self.out.append(_v("SETTLEMENT", f"{name} has unknown status {s.status!r}"))
            return
        if not want:
            if gids or s.ledger_group:
                self.out.append(_v("SETTLEMENT", f"{name} moved no money but points at a "
                                                 f"ledger group"))
            return
        if len(gids) != 1 or s.ledger_group != str(gids[0]):
            self.out.append(_v("SETTLEMENT", f"{name} is funded by group {s.ledger_group} but "
                                             f"the ledger holds {gids} for it"))
            return
        group = self.groups[gids[0]]
        if group.currency != s.currency or sorted(self.legs[group.id]) != want:
            self.out.append(_v("SETTLEMENT", f"{name}: its funding group {group.id} does not "
                                             f"book its fees and payout"))

    # -- refund postings --------------------------------------------------------------------

    def _postings(self) -> None:
        by_id = {int(s.id): s for s in self.settlements}
        for rrn, p in sorted(self.postings.items()):
            name = f"refund posting {rrn} ({p.amount_minor} {p.currency}, {p.state})"
            problem = _mac_problem(posting_mac, self.key, p) or self._posting_problem(p, by_id)
            if problem:
                self.out.append(_v("POSTING", f"{name} {problem}"))
        for item in self.items:
            row = self.txns.get(int(item.txn_id))
            if item.kind == TxnKind.REFUND and row is not None and row.rrn not in self.postings:
                self.out.append(_v("POSTING", f"settled refund {row.rrn} (txn {row.id}) has no "
                                              f"refund posting"))

    def _posting_problem(self, p: Any, settlements: dict[int, Any]) -> str | None:
        row = self.by_rrn.get(p.rrn)
        if row is None or row.kind != TxnKind.REFUND or row.response_code != "00":
            return "matches no approved refund"
        if (row.merchant_id, int(row.amount_minor), row.currency, row.pan_masked) != (
                p.merchant_id, int(p.amount_minor), p.currency, p.pan_masked):
            return "disagrees with its refund"
        group = self.groups.get(int(row.group_id)) if row.group_id is not None else None
        if group is None or (group.amount_minor, group.currency) != (int(p.amount_minor),
                                                                     p.currency):
            return "has no ledger group booking its amount"
        s = settlements.get(int(p.settlement_id))
        item = self.item_of.get(int(row.id))
        if s is None or (s.merchant_id, s.currency, s.business_date) != (
                p.merchant_id, p.currency, p.settlement_date) or item is None \
                or item.batch != s.batch:
            return f"does not belong to settlement {p.settlement_id} as its item says"
        if p.state not in ("settled", "posted"):
            return f"has unknown state {p.state!r}"
        return None

    # -- notifications ----------------------------------------------------------------------

    def _notices(self) -> None:
        assert self.notices is not None
        sent: dict[str, set[str]] = defaultdict(set)
        for n in self.notices:
            key = n.reference if n.event == "merchant_funded" else n.rrn
            sent[n.event].add(str(key))
            problem = self._notice_problem(n)
            if problem:
                self.out.append(_v("NOTICE", f"notification {n.id} ({n.event} {key}) "
                                             f"{problem}"))
        for rrn, p in sorted(self.postings.items()):
            if (p.state == "posted") != (rrn in sent["refund_posted"]):
                self.out.append(_v("NOTICE", f"refund posting {rrn} is {p.state} but "
                                             f"{'no' if p.state == 'posted' else 'a'} "
                                             f"refund_posted notification was recorded"))
        for s in self.settlements:
            if (s.status == "funded") != (f"settlement:{s.id}" in sent["merchant_funded"]):
                self.out.append(_v("NOTICE", f"settlement {s.id} is {s.status} but "
                                             f"{'no' if s.status == 'funded' else 'a'} "
                                             f"merchant_funded notification was recorded"))
        for row in self.txns.values():
            if row.kind == TxnKind.REFUND and row.response_code == "00" and \
                    row.review_state in (None, ReviewState.APPROVED) and \
                    row.rrn not in sent["refund_approved"]:
                self.out.append(_v("NOTICE", f"approved refund {row.rrn} (txn {row.id}) has "
                                             f"no refund_approved notification"))

    def _notice_problem(self, n: Any) -> str | None:
        said = (n.merchant_id, n.amount_minor, n.currency)
        if n.event in ("refund_approved", "refund_rejected"):
            row = self.by_rrn.get(n.rrn)
            if row is None or row.kind != TxnKind.REFUND:
                return "names no refund"
            if said != (row.merchant_id, int(row.amount_minor), row.currency) or \
                    n.pan_masked != row.pan_masked:
                return "disagrees with its refund"
            if n.event == "refund_rejected" and row.review_state != ReviewState.REJECTED:
                return "tells of a rejection the refund's review does not record"
        elif n.event == "refund_posted":
            p = self.postings.get(n.rrn)
            if p is None or said != (p.merchant_id, int(p.amount_minor), p.currency) or \
                    n.reference != f"settlement:{p.settlement_id}":
                return "disagrees with its refund posting"
        elif n.event == "merchant_funded":
            s = self.settlement_of.get(n.reference)
            if s is None or said != (s.merchant_id, s.figures.get("net_minor"), s.currency):
                return "disagrees with its settlement"
        else:
            return "is of an unknown event"
        return None
