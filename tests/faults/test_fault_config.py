"""``[[faults]]`` in the host config: rules load at start, bad ones are clear config errors."""

from __future__ import annotations

import tomllib

import pytest

pytest.importorskip("host.config", reason="the host engine (host.config) has not landed")

from host.config import ConfigError, default_config_text, parse_config  # noqa: E402
from host.faults.rules import FaultRegistry  # noqa: E402

FAULTS = """
[[faults]]
id = "lost-approval"
action = "drop"
process = true
mti = "0200"
count = 2
"""


def config_with(extra: str) -> object:
    return parse_config(tomllib.loads(default_config_text() + extra), "host.toml")


def test_config_faults_feed_the_registry() -> None:
    """A [[faults]] table becomes a live rule that fires for the next N matching requests."""
    config = config_with(FAULTS)
    registry = FaultRegistry(config.faults)  # type: ignore[attr-defined]
    decisions = [registry.match({"t": "0200", "3": "000000"}) for _ in range(3)]
    assert [d.fault_id if d else None for d in decisions] == ["lost-approval"] * 2 + [None]


def test_bad_config_fault_names_the_key() -> None:
    """A fault rule missing its delay is a ConfigError naming faults[0] and the problem."""
    with pytest.raises(ConfigError, match=r"host.toml: faults\[0\].*needs delay_ms"):
        config_with('\n[[faults]]\naction = "delay"\nprocess = false\n')
