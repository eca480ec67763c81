"""Double-entry ledger on SQLAlchemy Core: balanced posting groups in integer minor units.

Knows nothing of ISO 8583. Modules: :mod:`~host.ledger.db` (engines, SQLite settings),
:mod:`~host.ledger.schema` (tables, append-only triggers), :mod:`~host.ledger.book` (posting,
mirroring, balances, idempotency records, hash chain), :mod:`~host.ledger.accounts` (account
names), :mod:`~host.ledger.verify` (invariant checks).
"""

from host.ledger.accounts import merchant_holds, merchant_payable
from host.ledger.book import Group, Ledger, LedgerError, to_ms
from host.ledger.db import is_sqlite, normalise_url, open_engine, schema_transaction
from host.ledger.schema import create_schema, drop_append_only_triggers
from host.ledger.verify import verify_connection, verify_database

__all__ = [
    "Group", "Ledger", "LedgerError", "create_schema", "drop_append_only_triggers", "is_sqlite",
    "merchant_holds", "merchant_payable", "normalise_url", "open_engine", "schema_transaction",
    "to_ms", "verify_connection", "verify_database",
]  # fmt: skip
