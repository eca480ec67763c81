"""The suite-wide scan for card data in everything a run produced (tests/card_data_scan.py):
the scanner itself, and the end-of-session scan failing a run, with and without xdist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from card_data_scan import _PAN, _TRACK2, find_card_data
from hypothesis import given
from hypothesis import strategies as st

from protocol.masking import luhn_ok, mask_pan

TESTS = Path(__file__).parent
LEAKY = """
def test_writes_a_receipt(tmp_path):
    (tmp_path / "receipt.txt").write_text("card 4111" + "1" * 12)


def test_prints_it(capsys):
    print("pan=" + "5555" * 3 + "4444")
"""
CLEAN = """
def test_writes_a_masked_receipt(tmp_path):
    (tmp_path / "receipt.txt").write_text("card 411111******1111")
"""


def test_scanner_finds_what_it_must() -> None:
    """The scanner flags a bare PAN and track 2, and passes masked PANs, RRNs and hex digests."""
    assert find_card_data(b"log pan=4111111111111111 end")
    assert find_card_data(b"\x00;4111111111111111=30121010000?")
    assert not find_card_data(b"pan=411111******1111 rrn=000000000001 ts=1764205200000")
    assert not find_card_data(b"hash=ab4111111111111111cd")


def _whole_data_hits(data: bytes) -> list[str]:
    """The two patterns run over all of ``data``: what the scanner must find."""
    pans = [f"PAN {mask_pan(m.group(1).decode())} at byte {m.start(1)}"
            for m in _PAN.finditer(data) if luhn_ok(m.group(1).decode())]
    tracks = [f"track 2 of {mask_pan(m.group(1).decode())} at byte {m.start(1)}"
              for m in _TRACK2.finditer(data) if luhn_ok(m.group(1).decode())]
    return pans + tracks


# Bytes the patterns care about, drawn by name so that a falsifying example prints no PAN.
_NAMED = {"visa": b"4111111111111111", "mastercard": b"5555555555554444",
          "amex": b"378282246310005", "track2": b";4111111111111111=30121010000?",
          "equals": b"=", "D": b"D", "hex": b"a", "HEX": b"F", "dot": b".", "nul": b"\x00"}
_PIECES = st.lists(st.one_of(
    st.sampled_from(sorted(_NAMED)),
    st.binary(max_size=6),
    st.integers(min_value=0, max_value=10**22).map(lambda n: str(n).encode())),
    max_size=40)


@given(_PIECES)
def test_scanner_finds_what_the_patterns_find_in_the_whole_data(pieces: list[str | bytes],
                                                               ) -> None:
    """Scanning only around runs of 12+ digits gives the very hits, at the very bytes, that
    the patterns give run over all of the data."""
    data = b"".join(_NAMED[p] if isinstance(p, str) else p for p in pieces)
    found, expected = find_card_data(data), _whole_data_hits(data)  # masked: safe to print
    assert found == expected


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Run ``source`` as a test module in a child pytest with the scan plugin loaded."""
    pytester.makepyfile(test_inner=source)
    basetemp = pytester.path / "inner-tmp"
    try:
        return pytester.runpytest_subprocess("-p", "card_data_scan", "-p", "no:cacheprovider",
                                             f"--basetemp={basetemp}", *args)
    finally:
        shutil.rmtree(basetemp, ignore_errors=True)  # the planted PANs must not outlive it


@pytest.fixture(autouse=True)
def _child_finds_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    # The child loads the plugins it is given and no installed one: hypothesis, schemathesis
    # and the scenario plugin cost each child process (and each of its xdist workers) ~2 s
    # of start-up and take no part in the scan.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.mark.parametrize("workers", [[], ["-p", "xdist.plugin", "-n", "2"]],
                         ids=["serial", "xdist"])
def test_a_leaked_pan_fails_the_run(pytester: pytest.Pytester, workers: list[str]) -> None:
    """Passing tests that leave a full PAN in a file or in their output make the run exit 1,
    naming the file and the test with the PAN masked; under xdist the controller sees the
    files and output of every worker."""
    result = _run(pytester, LEAKY, *workers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "2 passed" in out and "card data scan FAILED" in out
    assert ("created: 2/2 workers" in out) == bool(workers)
    assert "receipt.txt: PAN 411111******1111" in out
    assert "test_prints_it (call): PAN 555555******4444" in out
    assert out.count("555555******4444") == 1, "the call's output is scanned once, not again " \
        "with the teardown report that repeats it"
    assert "4111111111111111" not in out and "5555555555554444" not in out


def test_a_clean_run_says_what_it_scanned(pytester: pytest.Pytester) -> None:
    """A run with masked PANs only passes, and says how much it scanned."""
    result = _run(pytester, CLEAN)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["card data scan: * files, * bytes, * test outputs, 0 hits"])
