"""Host metrics, served at ``GET /metrics`` in the Prometheus text format (version 0.0.4).

The values live in a ``prometheus_client`` :class:`~prometheus_client.CollectorRegistry` of
this host's own (never the library's global default one: tests run many hosts in one process),
and the library writes the exposition. The thin wrappers here keep the host's calling style,
labels by keyword (``requests.inc(mti="0200", rc="00")``), and let other modules add families
with :meth:`Metrics.counter` / :meth:`Metrics.gauge` (e.g. injected faults) that appear in the
same scrape. The library's own locks keep updates and scrapes consistent across threads.

Standard families::

    poslab_requests_total{mti,rc}            ISO requests answered, by request MTI and DE39
    poslab_request_latency_ms                histogram of frame-in to response-out time
    poslab_open_connections                  ISO connections currently open
    poslab_connections_total                 ISO connections accepted
    poslab_connections_closed_total{reason}  closes the host decided: framing, decode,
                                             frame_deadline, first_frame_timeout,
                                             idle_timeout, unanswerable, over_limit,
                                             over_peer_limit

With front processes (``host.front``) these are the engine's: it counts the connections from
the slots it grants (:mod:`host.connection_caps`) and the requests it answers (latency from the
request's arrival on the pipe to its answer), and adds what each front counts itself, its
closes and its own answers (RC 30, 58), from the front's periodic tally
(:mod:`host.front.tally`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import prometheus_client
from prometheus_client import CollectorRegistry, generate_latest

# The ``*_created`` timestamp series would add a name per family that /metrics never served;
# the switch is process-wide, and this module is the process's only user of the library.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated

LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

_Series: TypeAlias = prometheus_client.Counter | prometheus_client.Gauge
"""One family, or one labelled child of it, as the library holds it."""


class Counter:
    """A monotonically increasing count per label set.

    Label names are given when the family is made, or else taken from the first :meth:`inc`;
    a later call with other label names is a ``ValueError``.
    """

    _kind: type[prometheus_client.Counter] | type[prometheus_client.Gauge] = (
        prometheus_client.Counter)

    def __init__(self, registry: CollectorRegistry, name: str, help_text: str,
                 labelnames: Sequence[str] | None) -> None:
        self.name = name
        self.help = help_text
        self._registry = registry
        self._metric: _Series | None = None
        if labelnames is not None:
            self._make(labelnames)

    def _make(self, labelnames: Iterable[str]) -> _Series:
        self._metric = self._kind(self.name, self.help, sorted(labelnames),
                                  registry=self._registry)
        return self._metric

    def series(self, **labels: str) -> _Series:
        """The library's child for one label set, to keep at hand on a hot path."""
        metric = self._metric if self._metric is not None else self._make(labels)
        return metric.labels(**labels) if labels else metric

    def inc(self, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        self.series(**labels).inc(amount)

    def get(self, **labels: str) -> float:
        """The current value of one series (0 when never touched)."""
        if self._metric is None:
            return 0.0
        for family in self._metric.collect():
            for sample in family.samples:
                if sample.name in (self.name, f"{self.name}_total") and sample.labels == labels:
                    return sample.value
        return 0.0


class Gauge(Counter):
    """A value that goes up and down (:meth:`inc` accepts negative amounts)."""

    _kind = prometheus_client.Gauge

    def set(self, value: float, **labels: str) -> None:
        """Set the series to ``value``."""
        series = self.series(**labels)
        assert isinstance(series, prometheus_client.Gauge)
        series.set(value)


class Metrics:
    """The metrics of one host process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._names: set[str] = {"poslab_request_latency_ms"}
        self.requests = self.counter("poslab_requests_total",
                                     "ISO 8583 requests answered, by request MTI and DE39.",
                                     labelnames=("mti", "rc"))
        self.latency_ms = prometheus_client.Histogram(
            "poslab_request_latency_ms", "Time from a complete request frame to its response, ms.",
            buckets=LATENCY_BUCKETS_MS, registry=self.registry)
        self.open_connections = self.gauge("poslab_open_connections",
                                           "ISO 8583 connections currently open.", labelnames=())
        self.connections = self.counter("poslab_connections_total",
                                        "ISO 8583 connections accepted.", labelnames=())
        self.closed = self.counter("poslab_connections_closed_total",
                                   "Connections the host closed, by reason.",
                                   labelnames=("reason",))
        # request() runs once per answered message: keep its (mti, rc) series at hand rather
        # than have the library validate and look up the label names every time.
        self._request_series: dict[tuple[str, str], _Series] = {}

    def counter(self, name: str, help_text: str,
                labelnames: Sequence[str] | None = None) -> Counter:
        """Register a new counter family (label names now, or from its first ``inc``)."""
        return Counter(self.registry, self._claim(name), help_text, labelnames)

    def gauge(self, name: str, help_text: str,
              labelnames: Sequence[str] | None = None) -> Gauge:
        """Register a new gauge family (label names now, or from its first use)."""
        return Gauge(self.registry, self._claim(name), help_text, labelnames)

    def _claim(self, name: str) -> str:
        # The registry refuses a duplicate only once the family is made, which for a family
        # whose label names come from its first use would be at the first request.
        if name in self._names:
            raise ValueError(f"metric {name} is already registered")
        self._names.add(name)
        return name

    def request(self, mti: str, rc: str, latency_ms: float) -> None:
        """Count one answered request and its latency."""
        series = self._request_series.get((mti, rc))
        if series is None:
            series = self._request_series[(mti, rc)] = self.requests.series(mti=mti, rc=rc)
        series.inc()
        self.latency_ms.observe(latency_ms)

    def render(self) -> str:
        """The whole registry as Prometheus text."""
        return generate_latest(self.registry).decode()
