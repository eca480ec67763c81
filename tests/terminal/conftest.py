"""Fixtures for the terminal tests: a fake host on port 0, a config with short timeouts, and a
real ``poslab-host`` subprocess with a terminal config pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from term_fakehost import FakeHostState, listen
from term_helpers import RealHost

from terminal.config import TerminalConfig
from terminal.hostproc import HostProcess


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


@pytest.fixture
def real_host(tmp_path: Path) -> Iterator[RealHost]:
    """A poslab-host subprocess on 127.0.0.1 port 0 with its own database."""
    proc = HostProcess(tmp_path / "host")
    port = proc.start()
    try:
        yield RealHost(port, int(str(proc.info["admin_port"])), str(proc.info["admin_token"]))
    finally:
        proc.stop()


@pytest.fixture
def real_config(tmp_path: Path, real_host: RealHost) -> TerminalConfig:
    """Terminal config for the real host; the timeout leaves a loaded machine room."""
    return TerminalConfig(port=real_host.port, data_dir=tmp_path / "terminal",
                          timeout_s_response=5.0, reversal_repeats=2, echo_interval_s=0)
