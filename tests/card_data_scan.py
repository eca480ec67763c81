"""Suite-wide guard against card data leaking into what poslab writes (reliability.md S4, I14).

This pytest plugin keeps the captured output and failure text of every test; the test in
``test_zz_card_data.py`` runs last and scans that text plus every file the suite left under
pytest's temporary directory (SQLite databases, WAL files, JSON logs, journals, receipts,
notification outboxes, reports) and the snapshot SVGs, for

* any Luhn-valid run of 13-19 digits that starts like a card number (2-6), and
* track-2 data: a Luhn-valid PAN, ``=`` or ``D``, four digits.

Scenario, config and source files the tests write as *input* (``.yaml``, ``.toml``, ``.py``)
are not outputs and are skipped. Hex digests are not mistaken for PANs: a run glued to a hex
letter on either side is not a card number in any text poslab writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from protocol.masking import luhn_ok, mask_pan

_PAN = re.compile(rb"(?<![0-9A-Fa-f.])([2-6][0-9]{12,18})(?![0-9A-Fa-f])")
_TRACK2 = re.compile(rb"(?<![0-9])([0-9]{12,19})[=D]([0-9]{4})")
INPUT_SUFFIXES = {".yaml", ".yml", ".toml", ".py", ".pyc", ".cfg", ".ini"}


@dataclass
class Evidence:
    """What the suite produced: captured text per test id."""

    texts: dict[str, str] = field(default_factory=dict)


EVIDENCE = Evidence()


def find_card_data(data: bytes) -> list[str]:
    """Masked descriptions of every PAN or track-2 hit in ``data``."""
    hits = []
    for m in _PAN.finditer(data):
        digits = m.group(1).decode()
        if luhn_ok(digits):
            hits.append(f"PAN {mask_pan(digits)} at byte {m.start(1)}")
    for m in _TRACK2.finditer(data):
        digits = m.group(1).decode()
        if luhn_ok(digits):
            hits.append(f"track 2 of {mask_pan(digits)} at byte {m.start(1)}")
    return hits


def output_files(roots: list[Path]) -> Iterator[Path]:
    """Every file under ``roots`` that the suite wrote as output."""
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.suffix not in INPUT_SUFFIXES:
                yield path


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep each test's captured stdout/stderr/log and failure text."""
    parts = [content for _, content in report.sections]
    if report.longrepr is not None:
        parts.append(report.longreprtext)
    if parts:
        key = f"{report.nodeid} ({report.when})"
        EVIDENCE.texts[key] = EVIDENCE.texts.get(key, "") + "\n".join(parts)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the scan after everything else, whatever the order of collection."""
    last = [i for i in items if i.get_closest_marker("card_data_scan")]
    for item in last:
        items.remove(item)
    items.extend(last)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker of the final scan."""
    config.addinivalue_line("markers", "card_data_scan: the suite-wide card data scan (runs last)")
