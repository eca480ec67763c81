"""Fixtures for the terminal tests: a fake host on port 0, a config with short timeouts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from term_fakehost import FakeHostState, listen

from terminal.config import TerminalConfig


@pytest.fixture
def fake_host() -> Iterator[tuple[int, FakeHostState]]:
    """A fake host listening on 127.0.0.1:0: yields (port, its state)."""
    state = FakeHostState()
    port, listening = listen(state)
    yield port, state
    listening.stopListening()  # type: ignore[attr-defined]


@pytest.fixture
def config(tmp_path: Path, fake_host: tuple[int, FakeHostState]) -> TerminalConfig:
    """A terminal config pointing at the fake host; the timeout leaves a loaded machine room."""
    return TerminalConfig(port=fake_host[0], data_dir=tmp_path / "data",
                          timeout_s_response=1.0, reversal_repeats=2, echo_interval_s=0)
