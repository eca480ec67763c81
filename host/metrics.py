"""Host metrics in the Prometheus text exposition format (version 0.0.4), served at
``GET /metrics``.

A tiny registry instead of a dependency: counters and gauges with labels, and one latency
histogram. Everything is updated on the reactor thread, but a lock keeps a scrape consistent
if another thread ever updates a family. Other modules add their own families with
:meth:`Metrics.counter` / :meth:`Metrics.gauge` (e.g. injected faults) and they appear in the
same scrape.

Standard families::

    poslab_requests_total{mti,rc}            ISO requests answered, by request MTI and DE39
    poslab_request_latency_ms                histogram of frame-in to response-out time
    poslab_open_connections                  ISO connections currently open
    poslab_connections_total                 ISO connections accepted
    poslab_connections_closed_total{reason}  closes the host decided: framing, decode,
                                             frame_deadline, first_frame_timeout,
                                             idle_timeout, unanswerable, over_limit,
                                             over_peer_limit
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TypeVar

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


def _fmt_labels(labels: Labels, extra: Iterable[tuple[str, str]] = ()) -> str:
    items = [*labels, *extra]
    if not items:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in items
    )
    return "{" + body + "}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Family:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, lock: threading.Lock) -> None:
        self.name = name
        self.help = help_text
        self._lock = lock
        self._values: dict[Labels, float] = {}

    def _key(self, labels: dict[str, str]) -> Labels:
        return tuple(sorted((k, str(v)) for k, v in labels.items()))

    def get(self, **labels: str) -> float:
        """The current value of one series (0 when never touched)."""
        with self._lock:
            return self._values.get(self._key(labels), 0)

    def lines(self) -> list[str]:
        return [f"{self.name}{_fmt_labels(k)} {_num(v)}" for k, v in sorted(self._values.items())]


_H = TypeVar("_H", bound=_Family)


class Counter(_Family):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def inc(self, amount: float = 1, **labels: str) -> None:
        """Add ``amount`` to the series named by ``labels``."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount


class Gauge(Counter):
    """A value that goes up and down (:meth:`inc` accepts negative amounts)."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        """Set the series to ``value``."""
        with self._lock:
            self._values[self._key(labels)] = value


class Histogram(_Family):
    """Cumulative buckets, sum and count of observations (no labels)."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, lock: threading.Lock,
                 buckets: tuple[float, ...]) -> None:
        super().__init__(name, help_text, lock)
        self.buckets = buckets
        self._counts = [0] * len(buckets)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        """Record one observation."""
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
            self._sum += value
            self._count += 1

    @property
    def count(self) -> int:
        """How many observations so far."""
        return self._count

    def lines(self) -> list[str]:
        out = [f'{self.name}_bucket{{le="{_num(b)}"}} {c}'
               for b, c in zip(self.buckets, self._counts, strict=True)]
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self._count}')
        out.append(f"{self.name}_sum {_num(self._sum)}")
        out.append(f"{self.name}_count {self._count}")
        return out


class Metrics:
    """The registry of one host process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self.requests = self.counter("poslab_requests_total",
                                     "ISO 8583 requests answered, by request MTI and DE39.")
        self.latency_ms = self._add(Histogram(
            "poslab_request_latency_ms", "Time from a complete request frame to its response, ms.",
            self._lock, LATENCY_BUCKETS_MS))
        self.open_connections = self.gauge("poslab_open_connections",
                                           "ISO 8583 connections currently open.")
        self.open_connections.set(0)
        self.connections = self.counter("poslab_connections_total",
                                        "ISO 8583 connections accepted.")
        self.closed = self.counter("poslab_connections_closed_total",
                                   "Connections the host closed, by reason.")

    def _add(self, family: _H) -> _H:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help_text: str) -> Counter:
        """Register a new counter family."""
        return self._add(Counter(name, help_text, self._lock))

    def gauge(self, name: str, help_text: str) -> Gauge:
        """Register a new gauge family."""
        return self._add(Gauge(name, help_text, self._lock))

    def request(self, mti: str, rc: str, latency_ms: float) -> None:
        """Count one answered request and its latency."""
        self.requests.inc(mti=mti, rc=rc)
        self.latency_ms.observe(latency_ms)

    def render(self) -> str:
        """The whole registry as Prometheus text."""
        out: list[str] = []
        with self._lock:
            for fam in self._families.values():
                out.append(f"# HELP {fam.name} {fam.help}")
                out.append(f"# TYPE {fam.name} {fam.kind}")
                out.extend(fam.lines())
        return "\n".join(out) + "\n"
