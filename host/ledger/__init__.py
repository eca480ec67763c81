"""Double-entry ledger on SQLAlchemy Core: balanced posting groups in integer minor units.

Knows nothing of ISO 8583. Modules: :mod:`~host.ledger.db` (engines, SQLite settings),
:mod:`~host.ledger.schema` (tables, append-only triggers), :mod:`~host.ledger.book` (posting,
mirroring, balances, idempotency records, hash chain), :mod:`~host.ledger.accounts` (account
names), :mod:`~host.ledger.chain` (the chain key and its MACs), :mod:`~host.ledger.chains`
(several chains in one database: names, id ranges, registry), :mod:`~host.ledger.anchor`
(chain heads written down outside the database), :mod:`~host.ledger.verify` and
:mod:`~host.ledger.verify_chains` (invariant checks), :mod:`~host.ledger.prepared`
(statements compiled once, run on the driver) and :mod:`~host.ledger.pending` (PostgreSQL: a
request's writes sent as one statement).
"""

from host.ledger.accounts import merchant_holds, merchant_payable
from host.ledger.anchor import Anchor, AnchorError, parse_anchor, parse_anchors
from host.ledger.book import Group, Ledger, LedgerError, to_ms
from host.ledger.chain import ChainKey, ChainKeyError, ensure_key, key_path, read_key
from host.ledger.chains import MAIN_CHAIN, Chain
from host.ledger.db import is_sqlite, normalise_url, open_engine, schema_transaction
from host.ledger.schema import SchemaVersionError, create_schema, drop_append_only_triggers
from host.ledger.verify import (
    chain_head,
    chain_heads,
    read_anchor,
    verify_connection,
    verify_database,
)

__all__ = [
    "Anchor", "AnchorError", "Chain", "ChainKey", "ChainKeyError", "Group", "Ledger",
    "LedgerError", "MAIN_CHAIN",
    "SchemaVersionError", "chain_head", "chain_heads", "create_schema",
    "drop_append_only_triggers",
    "ensure_key", "is_sqlite", "key_path", "merchant_holds", "merchant_payable",
    "normalise_url", "open_engine", "parse_anchor", "parse_anchors", "read_anchor", "read_key",
    "schema_transaction", "to_ms", "verify_connection", "verify_database",
]  # fmt: skip
