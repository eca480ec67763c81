"""Fixtures of the TLS tests: a throw-away CA made fresh in each test's directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from tls_pki import Pki, make_pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A fresh throw-away CA with a host certificate, in this test's directory."""
    return make_pki(tmp_path / "pki")
