"""Report shaping: settlement rows as CSV/JSON and the refunds report's aggregates."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from host.reports import (
    SETTLEMENT_COLUMNS,
    RefundRow,
    ReportError,
    refunds_report,
    render,
    render_refunds,
    settlement_rows,
)

SETTLEMENTS = [
    {"merchant_id": "M2", "batch": "T2/000001", "business_date": "2026-11-27", "currency": "USD",
     "sales_count": 1, "sales_minor": 500, "refunds_count": 0, "refunds_minor": 0,
     "adjustments_count": 0, "adjustments_minor": 0, "fees_minor": 5, "net_minor": 495,
     "funding_date": "2026-11-30", "status": "closed", "internal": "not shown"},
    {"merchant_id": "M1", "batch": "T1/000001", "business_date": "2026-11-27", "currency": "CNY",
     "sales_count": 2, "sales_minor": 3000, "refunds_count": 1, "refunds_minor": 1000,
     "adjustments_count": 0, "adjustments_minor": 0, "fees_minor": 18, "net_minor": 1982,
     "funding_date": "2026-11-30", "status": "funded"},
]  # fmt: skip


def test_settlement_csv_and_json_share_columns_and_order() -> None:
    """CSV has the documented header and rows by date/merchant; JSON has the same values."""
    rows = settlement_rows(SETTLEMENTS)
    text = render(rows, "csv", SETTLEMENT_COLUMNS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == ",".join(SETTLEMENT_COLUMNS)
    assert [r["merchant_id"] for r in parsed] == ["M1", "M2"]
    assert parsed[0]["net_minor"] == "1982" and "internal" not in parsed[1]
    as_json = json.loads(render(rows, "json", SETTLEMENT_COLUMNS))
    assert [r["net_minor"] for r in as_json] == [1982, 495]
    with pytest.raises(ReportError, match="xml"):
        render(rows, "xml", SETTLEMENT_COLUMNS)


def test_refunds_report_by_reason_state_age_and_rate() -> None:
    """Refunds are tallied by reason, state and age bucket; rates are exact decimal strings."""
    refunds = [
        RefundRow("M1", "1", 1000, "CNY", "damaged", "posted", date(2026, 11, 1),
                  date(2026, 11, 6)),
        RefundRow("M1", "2", 500, "CNY", "", "settled", date(2026, 11, 20)),
        RefundRow("M1", "3", 250, "CNY", "damaged", "approved", date(2026, 11, 27)),
        RefundRow("M2", "4", 300, "CNY", "wrong_size", "rejected", date(2026, 10, 1)),
    ]
    report = refunds_report(refunds, {"M1": (4, 30000), "M3": (1, 100)}, date(2026, 11, 28))
    assert report["by_reason"] == {
        "damaged": {"count": 2, "amount_minor": 1250},
        "unspecified": {"count": 1, "amount_minor": 500},
        "wrong_size": {"count": 1, "amount_minor": 300},
    }
    assert report["by_state"]["posted"] == {"count": 1, "amount_minor": 1000}
    assert {k: v["count"] for k, v in report["by_age"].items()} == {
        "0-1d": 1, "2-7d": 1, "8-30d": 1, ">30d": 1}
    m1, m2, m3 = report["merchants"]
    assert (m1["refund_rate_amount"], m1["refund_rate_count"]) == ("0.0583", "0.7500")
    assert m2["refund_rate_amount"] is None and m3["refunds_count"] == 0
    csv_text = render_refunds(report, "csv")
    assert csv_text.splitlines()[1].startswith("M1,3,1750,4,30000,0.0583")
    assert json.loads(render_refunds(report, "json"))["merchants"][0]["merchant_id"] == "M1"
