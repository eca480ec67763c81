"""The chain's MAC scheme: a new ledger is written with keyed BLAKE2b, a ledger written with
HMAC-SHA256 keeps it (extended and verified with it), and both are recomputable by hand from
the key file with nothing but :mod:`hashlib` and :mod:`hmac`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from sqlalchemy import select

from host.clock import ManualClock
from host.ledger import key_path, open_engine, read_key, schema_transaction
from host.ledger.chain import ChainKey, ensure_key
from host.ledger.schema import create_schema, ledger_entry, posting_group
from host.service import HostService
from host.store_verify import verify_host_database as verify_database
from tests.host.engine.conftest import Term


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """A fresh database of each backend."""
    return str(request.getfixturevalue("db" if request.param == "sqlite" else "pg_url"))


def _first_group_hash(url: str, key: bytes, digest: Callable[[bytes, bytes], str]) -> bool:
    """Whether group 1's stored hash is ``digest(key, its document)``."""
    engine = open_engine(url)
    with engine.connect() as conn:
        g = conn.execute(select(posting_group).where(posting_group.c.id == 1)).one()
        legs = [[e.account, e.side, int(e.amount_minor)] for e in conn.execute(
            select(ledger_entry).where(ledger_entry.c.group_id == 1)
            .order_by(ledger_entry.c.id)).all()]
        conn.rollback()
    engine.dispose()
    doc = [g.prev_hash, 1, g.kind, g.reference, g.reverses, g.parent_id, g.currency,
           int(g.amount_minor), int(g.at_ms), g.memo, legs]
    return bool(g.hash == digest(key, json.dumps(doc, separators=(",", ":")).encode()))


def _blake2b(key: bytes, data: bytes) -> str:
    return hashlib.blake2b(data, key=key, digest_size=32).hexdigest()


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def test_a_new_ledger_is_macd_with_keyed_blake2b(
        url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """The first group of a new ledger carries the keyed BLAKE2b of its document."""
    service = make_service(db_url=url)
    Term(service, clock).approved_sale(1_000)
    key = bytes.fromhex(key_path(url).read_text().strip())
    assert service.chain_key.scheme == "blake2b"
    assert _first_group_hash(url, key, _blake2b)
    assert verify_database(url)["ok"]


def test_an_hmac_sha256_ledger_keeps_its_scheme(
        url: str, make_service: Callable[..., HostService], clock: ManualClock) -> None:
    """A ledger created under HMAC-SHA256 is extended with it by a host (and ``ledger
    verify``) holding the same key file: old and new groups verify, tampering still shows."""
    key, _ = ensure_key(key_path(url))
    engine = open_engine(url)
    with schema_transaction(engine) as conn:
        create_schema(conn, ChainKey(bytes.fromhex(key_path(url).read_text().strip()),
                                     scheme="hmac-sha256"))
    engine.dispose()
    service = make_service(db_url=url)
    Term(service, clock).approved_sale(1_000)
    assert service.chain_key.scheme == "hmac-sha256" and key.scheme == "blake2b"
    raw = bytes.fromhex(key_path(url).read_text().strip())
    assert _first_group_hash(url, raw, _hmac)
    assert service.verify()["ok"] and verify_database(url, read_key(key_path(url)))["ok"]
    with service.engine.begin() as conn:
        from host.ledger import drop_append_only_triggers

        drop_append_only_triggers(conn)
        conn.execute(posting_group.update().where(posting_group.c.id == 1)
                     .values(amount_minor=1))
    assert "CHAIN" in {v["invariant"] for v in verify_database(url)["violations"]}
