"""Suite-wide guard against card data leaking into what poslab writes.

This pytest plugin keeps the captured output and failure text of every test and, when the
session finishes, scans that text plus every file the suite left under pytest's temporary
directory (SQLite databases, WAL files, JSON logs, journals, receipts,
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
from typing import Any

import pytest

from protocol.masking import luhn_ok, mask_pan

_PAN = re.compile(rb"(?<![0-9A-Fa-f.])([2-6][0-9]{12,18})(?![0-9A-Fa-f])")
_TRACK2 = re.compile(rb"(?<![0-9])([0-9]{12,19})[=D]([0-9]{4})")
INPUT_SUFFIXES = {".yaml", ".yml", ".toml", ".py", ".pyc", ".cfg", ".ini"}


@dataclass
class Evidence:
    """What the suite produced: captured text per test id."""

    texts: dict[str, str] = field(default_factory=dict)
    kept: set[tuple[str, str]] = field(default_factory=set)

    def keep(self, key: str, text: str) -> None:
        """Add ``text`` to what ``key`` produced."""
        self.texts[key] = self.texts.get(key, "") + "\n" + text


EVIDENCE = Evidence()


# Both patterns need a run of at least 12 digits. This one finds such runs ~10x faster than the
# patterns themselves walk the bytes between them (it starts with one plain character class,
# which the regex engine skips to directly); the ledgers the suite writes are mostly pages
# of zeros and schema text.
_LONG_DIGITS = re.compile(rb"[0-9][0-9]{11,}")
# Around a run the patterns look one byte back and at most "=" or "D" plus 4 digits ahead.
_BEFORE, _AFTER = 1, 6


def _windows(data: bytes) -> Iterator[tuple[int, int]]:
    """The stretches of ``data`` that can hold a hit: each run of 12 or more digits with the
    bytes the patterns look at around it, overlapping stretches merged. Every match of the
    patterns lies inside one, and matches there exactly as in the whole of ``data``."""
    start = end = -1
    for m in _LONG_DIGITS.finditer(data):
        lo, hi = max(m.start() - _BEFORE, 0), m.end() + _AFTER
        if lo > end:
            if end >= 0:
                yield start, end
            start = lo
        end = hi
    if end >= 0:
        yield start, end


def find_card_data(data: bytes) -> list[str]:
    """Masked descriptions of every PAN or track-2 hit in ``data``."""
    pans, tracks = [], []
    for start, end in _windows(data):
        window = data[start:end]
        for m in _PAN.finditer(window):
            digits = m.group(1).decode()
            if luhn_ok(digits):
                pans.append(f"PAN {mask_pan(digits)} at byte {start + m.start(1)}")
        for m in _TRACK2.finditer(window):
            digits = m.group(1).decode()
            if luhn_ok(digits):
                tracks.append(f"track 2 of {mask_pan(digits)} at byte {start + m.start(1)}")
    return pans + tracks


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
    """Keep each test's captured stdout/stderr/log and failure text, under the phase that
    produced it.

    A report repeats the sections of the phases before it (the teardown report carries what
    setup and call printed too): each section is kept once, not scanned two or three times.
    Under pytest-xdist the controller receives every worker's reports here, so the scan at
    session end sees the output of the whole run.
    """
    for title, content in report.sections:  # "Captured stdout call", "Captured log setup"
        if (report.nodeid, title) not in EVIDENCE.kept:
            EVIDENCE.kept.add((report.nodeid, title))
            EVIDENCE.keep(f"{report.nodeid} ({title.rsplit(' ', 1)[-1]})", content)
    if report.longrepr is not None:
        EVIDENCE.keep(f"{report.nodeid} ({report.when})", report.longreprtext)


@dataclass
class ScanResult:
    """What the suite-wide scan looked at and what it found."""

    files: int = 0
    bytes: int = 0
    outputs: int = 0
    hits: list[str] = field(default_factory=list)


def scan(roots: list[Path], evidence: Evidence) -> ScanResult:
    """Scan every output file under ``roots`` and every captured test output."""
    result = ScanResult(outputs=len(evidence.texts))
    for path in output_files(roots):
        data = path.read_bytes()
        result.files += 1
        result.bytes += len(data)
        result.hits += [f"{path}: {h}" for h in find_card_data(data)]
    for test_id, text in evidence.texts.items():
        result.bytes += len(text)
        result.hits += [f"output of {test_id}: {h}" for h in find_card_data(text.encode())]
    return result


SNAPSHOTS = Path(__file__).parent / "terminal" / "__snapshots__"


RESULT_KEY = pytest.StashKey[ScanResult]()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the last test (in the controller, when pytest-xdist runs workers): scan the run's
    whole temporary directory, every worker's included, the snapshots and every test's
    captured output; any hit fails the run."""
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly:
        return  # an xdist worker: the controller scans once everything has finished
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]  # noqa: SLF001
    result = scan([base, SNAPSHOTS], EVIDENCE)
    config.stash[RESULT_KEY] = result
    if result.hits or result.files + result.outputs == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say what the scan covered, or list what it found (masked)."""
    result = config.stash.get(RESULT_KEY, None)
    if result is None:
        return
    if result.hits or result.files + result.outputs == 0:
        terminalreporter.write_sep("=", "card data scan FAILED", red=True)
        terminalreporter.write_line(
            f"{len(result.hits)} card data hits in {result.files} files and {result.outputs} "
            "test outputs (scanning nothing at all fails too):")
        for hit in result.hits[:40]:
            terminalreporter.write_line(f"  {hit}")
    else:
        terminalreporter.write_line(
            f"card data scan: {result.files} files, {result.bytes:,} bytes, "
            f"{result.outputs} test outputs, 0 hits")
