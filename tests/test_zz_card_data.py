"""The suite-wide scan for card data in everything the suite produced (runs last)."""

from __future__ import annotations

from pathlib import Path

import pytest
from card_data_scan import EVIDENCE, find_card_data, output_files

SNAPSHOTS = Path(__file__).parent / "terminal" / "__snapshots__"


def test_scanner_finds_what_it_must() -> None:
    """The scanner flags a bare PAN and track 2, and passes masked PANs, RRNs and hex digests."""
    assert find_card_data(b"log pan=4111111111111111 end")
    assert find_card_data(b"\x00;4111111111111111=30121010000?")
    assert not find_card_data(b"pan=411111******1111 rrn=000000000001 ts=1764205200000")
    assert not find_card_data(b"hash=ab4111111111111111cd")


@pytest.mark.card_data_scan
def test_no_card_data_in_anything_the_suite_produced(tmp_path_factory: pytest.TempPathFactory
                                                     ) -> None:
    """No log, database, journal, receipt, report, snapshot or test output holds a full PAN."""
    base = tmp_path_factory.getbasetemp()
    hits: list[str] = []
    scanned_files = scanned_bytes = 0
    for path in output_files([base, SNAPSHOTS]):
        data = path.read_bytes()
        scanned_files += 1
        scanned_bytes += len(data)
        hits += [f"{path}: {h}" for h in find_card_data(data)]
    for test_id, text in EVIDENCE.texts.items():
        scanned_bytes += len(text)
        hits += [f"output of {test_id}: {h}" for h in find_card_data(text.encode())]
    assert scanned_files > 0
    assert not hits, f"{len(hits)} card data hits in {scanned_files} files:\n" + "\n".join(
        hits[:40])
    print(f"scanned {scanned_files} files, {scanned_bytes} bytes, "
          f"{len(EVIDENCE.texts)} test outputs: 0 hits")
