"""Merchant reports: the evidence the origin document asks merchants to keep.

* **Settlement report** -- per merchant, per batch: counts and amounts by type (sales, refunds,
  adjustments), fees, net, business date, funding date and status. Rows come from the settlement
  tables; :func:`render` turns them into CSV or JSON.
* **Refunds report** -- refunds in a date range by reason, by state and by age (days from the
  refund to the report date, or to its posting when posted), plus the refund rate per merchant
  (refunded amount / sales amount, and refund count / sale count).

Everything here is pure: the caller reads the rows; amounts stay integer minor units, rates are
Decimal strings so nothing in a report is a float.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

SETTLEMENT_COLUMNS = (
    "merchant_id", "batch", "business_date", "currency", "sales_count", "sales_minor",
    "refunds_count", "refunds_minor", "adjustments_count", "adjustments_minor", "fees_minor",
    "net_minor", "funding_date", "status",
)  # fmt: skip
"""Column order of the settlement report (CSV header, JSON keys)."""

AGE_BUCKETS = ((0, 1, "0-1d"), (2, 7, "2-7d"), (8, 30, "8-30d"), (31, None, ">30d"))
"""Refund age buckets in days, inclusive bounds."""


class ReportError(ValueError):
    """Bad report parameters (format, date range); the message says which."""


def render(rows: Sequence[Mapping[str, Any]], fmt: str, columns: Sequence[str]) -> str:
    """Rows as ``csv`` (header + one line per row, in ``columns`` order) or ``json`` (a list)."""
    if fmt == "json":
        return json.dumps([{c: row.get(c) for c in columns} for row in rows], indent=2,
                          default=str) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
        return out.getvalue()
    raise ReportError(f"unknown report format {fmt!r}; use csv or json")


def settlement_rows(settlements: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Order settlement records for the report: by business date, merchant, batch."""
    rows = [{c: s.get(c) for c in SETTLEMENT_COLUMNS} for s in settlements]
    return sorted(rows, key=lambda r: (str(r["business_date"]), str(r["merchant_id"]),
                                       str(r["batch"])))


@dataclass(frozen=True)
class RefundRow:
    """One refund as the refunds report needs it."""

    merchant_id: str
    rrn: str
    amount_minor: int
    currency: str
    reason: str
    state: str
    created: date
    posted: date | None = None


def _bucket(days: int) -> str:
    for low, high, name in AGE_BUCKETS:
        if days >= low and (high is None or days <= high):
            return name
    return AGE_BUCKETS[0][2]  # negative ages (clock skew in input) count as new


def _rate(part: int, whole: int) -> str | None:
    if whole <= 0:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def _tally(into: dict[str, dict[str, int]], key: str, amount: int) -> None:
    slot = into.setdefault(key, {"count": 0, "amount_minor": 0})
    slot["count"] += 1
    slot["amount_minor"] += amount


def refunds_report(
    refunds: Iterable[RefundRow],
    sales: Mapping[str, tuple[int, int]],
    as_of: date,
) -> dict[str, Any]:
    """Aggregate refunds by reason, state and age, and per merchant with its refund rate.

    ``sales`` maps merchant id to ``(sale_count, sales_minor)`` over the same period.
    """
    by_reason: dict[str, dict[str, int]] = {}
    by_state: dict[str, dict[str, int]] = {}
    by_age: dict[str, dict[str, int]] = {name: {"count": 0, "amount_minor": 0}
                                         for _, _, name in AGE_BUCKETS}
    per_merchant: dict[str, dict[str, int]] = {}
    for r in refunds:
        _tally(by_reason, r.reason or "unspecified", r.amount_minor)
        _tally(by_state, r.state, r.amount_minor)
        _tally(by_age, _bucket(((r.posted or as_of) - r.created).days), r.amount_minor)
        _tally(per_merchant, r.merchant_id, r.amount_minor)
    merchants = []
    for mid in sorted(set(per_merchant) | set(sales)):
        got = per_merchant.get(mid, {"count": 0, "amount_minor": 0})
        sale_count, sales_minor = sales.get(mid, (0, 0))
        merchants.append({
            "merchant_id": mid, "refunds_count": got["count"],
            "refunds_minor": got["amount_minor"], "sales_count": sale_count,
            "sales_minor": sales_minor, "refund_rate_amount": _rate(got["amount_minor"],
                                                                    sales_minor),
            "refund_rate_count": _rate(got["count"], sale_count),
        })  # fmt: skip
    return {
        "as_of": as_of.isoformat(),
        "by_reason": dict(sorted(by_reason.items())),
        "by_state": dict(sorted(by_state.items())),
        "by_age": by_age,
        "merchants": merchants,
    }


REFUND_MERCHANT_COLUMNS = (
    "merchant_id", "refunds_count", "refunds_minor", "sales_count", "sales_minor",
    "refund_rate_amount", "refund_rate_count",
)  # fmt: skip
"""CSV columns of the refunds report (the per-merchant table; JSON has every section)."""


def render_refunds(report: Mapping[str, Any], fmt: str) -> str:
    """The refunds report as JSON (all sections) or CSV (the per-merchant table)."""
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    return render(report["merchants"], fmt, REFUND_MERCHANT_COLUMNS)
