"""The host's metrics registry: extension families, per-host registries, refused duplicates."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from host.metrics import Metrics


def test_extension_family_takes_labels_from_first_use() -> None:
    """A family added without label names is scraped with the names of its first inc."""
    metrics = Metrics()
    faults = metrics.counter("poslab_faults_applied_total", "Fault rules applied.")
    assert faults.get(action="delay", fault="slow") == 0
    faults.inc(fault="slow", action="delay")
    faults.inc(fault="slow", action="delay")
    assert faults.get(action="delay", fault="slow") == 2
    with pytest.raises(ValueError):
        faults.inc(reason="other")
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    [sample] = families["poslab_faults_applied"].samples
    assert sample.labels == {"action": "delay", "fault": "slow"} and sample.value == 2


def test_each_host_counts_in_its_own_registry() -> None:
    """Two hosts in one process keep separate counts; one host refuses a family twice."""
    first, second = Metrics(), Metrics()
    first.request("0200", "00", 3.0)
    first.closed.inc(reason="idle_timeout")
    second.open_connections.set(4)
    assert first.requests.get(mti="0200", rc="00") == 1
    assert second.requests.get(mti="0200", rc="00") == 0
    assert first.closed.get(reason="idle_timeout") == 1
    assert second.closed.get(reason="idle_timeout") == 0
    assert (first.open_connections.get(), second.open_connections.get()) == (0, 4)
    with pytest.raises(ValueError, match="already registered"):
        first.counter("poslab_faults_applied_total", "once")
        first.counter("poslab_faults_applied_total", "twice")
