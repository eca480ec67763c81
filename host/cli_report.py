"""``poslab-host report``: settlement and refunds reports straight from the database::

    poslab-host report settlement [--db URL] [--date YYYY-MM-DD] [--merchant ID]
                                  [--format csv|json]
    poslab-host report refunds    [--db URL] [--from YYYY-MM-DD] [--to YYYY-MM-DD]
                                  [--format csv|json]

The report goes to stdout. The settlement report ends with the ledger's chain anchor as of the
report (``# ledger anchor poslab-anchor:v1:...`` as the CSV's last line, one such line per chain
when partitioned hosts share the database, ``main`` first; with ``--format json``, which stays a
plain list, the same lines go to stderr): kept with the report, they let ``poslab-host ledger
verify --anchor`` prove later that no posting was cut off any chain
(docs/tamper-evidence.md). A missing database, a database without settlement tables, or a bad
date prints one line on stderr and exits 2. These reports read only; the host may be running.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

PROG = "poslab-host"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


def add_report_parser(sub: Any) -> None:
    """Add ``report settlement|refunds`` to the ``poslab-host`` subcommands."""
    report = sub.add_parser("report", help="settlement and refunds reports")
    kinds = report.add_subparsers(dest="report_kind", metavar="{settlement,refunds}",
                                  required=True)
    settle = kinds.add_parser("settlement", help="per merchant, per batch: counts, fees, net")
    settle.add_argument("--date", type=_date, help="business date (default: all)")
    settle.add_argument("--merchant", help="one merchant id (default: all)")
    refunds = kinds.add_parser("refunds", help="refunds by reason, state, age; refund rates")
    refunds.add_argument("--from", dest="start", type=_date, help="first business date")
    refunds.add_argument("--to", dest="end", type=_date, help="last business date")
    for p in (settle, refunds):
        p.add_argument("--db", metavar="URL", default=argparse.SUPPRESS,
                       help="SQLite file path or database URL (default: ./poslab.db)")
        p.add_argument("--format", choices=("csv", "json"), default="csv",
                       help="output format (default csv)")


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def run_report(args: argparse.Namespace, out: Any = None) -> int:
    """Print the requested report; 0 on success, 2 on a database problem."""
    from sqlalchemy import inspect, select

    from host.ledger import chain_heads, open_engine
    from host.ledger.schema import stored_columns
    from host.reports import (
        SETTLEMENT_COLUMNS,
        refunds_report,
        render,
        render_refunds,
        settlement_rows,
    )
    from host.settlement.book import StoreRefundSource
    from host.settlement.jobs import refund_rows, refund_state, settlement, settlement_dict

    out = out or sys.stdout
    db = str(args.db)
    if "://" not in db and not Path(db).is_file():
        return _fail(f"no database file at {db}")
    try:
        engine = open_engine(db)
        with engine.connect() as conn:
            ready = inspect(conn).has_table("settlement")
        if not ready:
            return _fail(f"{db} has no settlement tables (has a host run on it?)")
        if args.report_kind == "settlement":
            with engine.connect() as conn:  # a database no host of this version opened yet
                columns = stored_columns(conn, settlement)
            query = select(*columns).order_by(settlement.c.business_date, settlement.c.id)
            if args.date is not None:
                query = query.where(settlement.c.business_date == args.date)
            if args.merchant:
                query = query.where(settlement.c.merchant_id == args.merchant)
            with engine.connect() as conn:
                rows = [settlement_dict(r) for r in conn.execute(query).all()]
                # One line per ledger chain, main first (the only one without partitions).
                anchor = "".join(f"# ledger anchor {head}\n" for _, head in chain_heads(conn))
            text = render(settlement_rows(rows), args.format, SETTLEMENT_COLUMNS)
            if args.format == "csv":
                text += anchor
            else:
                sys.stderr.write(anchor)
        else:
            # One connection at a time: the host's SQLite engine begins every transaction
            # IMMEDIATE, so a second concurrent one in this process would wait on the first.
            source = StoreRefundSource(engine)
            records = source.refund_records(args.start, args.end)
            sales = source.sales_totals(args.start, args.end)
            with engine.connect() as conn:
                found = refund_rows(records, lambda rrn: refund_state(conn, rrn))
            as_of = args.end or max((r.created for r in found), default=date.today())
            text = render_refunds(refunds_report(found, sales, as_of), args.format)
        engine.dispose()
    except Exception as exc:  # a broken or unreachable database: one line, no traceback
        return _fail(f"cannot read reports from {db}: {str(exc).splitlines()[0]}")
    out.write(text)
    return 0

