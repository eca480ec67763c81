"""pytest plugin: the ``pg_url`` fixtures, a PostgreSQL database on a private schema.

Registered by the root conftest so host tests and crash tests share one definition.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


@contextmanager
def private_schema(key_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A URL on a new schema of ``$POSLAB_TEST_PG_URL``, dropped on exit, with the ledger chain
    key file in ``key_dir`` (``$POSLAB_CHAIN_KEY_FILE`` set through ``monkeypatch``).

    Skips without ``POSLAB_TEST_PG_URL``; with ``POSLAB_REQUIRE_PG=1`` an unreachable server
    fails instead.
    """
    base = os.environ.get("POSLAB_TEST_PG_URL")
    required = os.environ.get("POSLAB_REQUIRE_PG") == "1"
    if not base:
        if required:
            pytest.fail("POSLAB_REQUIRE_PG=1 but POSLAB_TEST_PG_URL is not set")
        pytest.skip("POSLAB_TEST_PG_URL not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any connection problem
        admin.dispose()
        if required:
            pytest.fail(f"PostgreSQL required but unreachable: {type(exc).__name__}")
        pytest.skip(f"PostgreSQL unreachable: {type(exc).__name__}")
    monkeypatch.setenv("POSLAB_CHAIN_KEY_FILE", str(key_dir / f"{schema}.chain-key"))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def pg_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A PostgreSQL URL on a private schema (dropped afterwards), with its own ledger chain
    key file in the test's temporary directory (``$POSLAB_CHAIN_KEY_FILE``).

    Skips without ``POSLAB_TEST_PG_URL``; with ``POSLAB_REQUIRE_PG=1`` an unreachable server
    fails the test instead.
    """
    with private_schema(tmp_path, monkeypatch) as url:
        yield url


@pytest.fixture(scope="module")
def module_pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """:func:`pg_url` for every test of a module that shares one database (a host process
    started once per module, say); ``$POSLAB_CHAIN_KEY_FILE`` is set for as long."""
    with pytest.MonkeyPatch.context() as monkeypatch, \
            private_schema(tmp_path_factory.mktemp("pg"), monkeypatch) as url:
        yield url
