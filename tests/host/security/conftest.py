"""Fixtures for the host security tests: a host subprocess on SQLite or PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database: an SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "poslab.db")
    url: str = request.getfixturevalue("pg_url")
    return url
