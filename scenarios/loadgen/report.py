"""Turn a measured run into figures (msg/s, percentiles, CPU per message) and print them."""

from __future__ import annotations

from typing import Any

from scenarios.loadgen.driver import Tally
from scenarios.loadgen.workload import KINDS


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0-100) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 3)


def summarize(tally: Tally, elapsed: float, *, cpu_s: float | None = None,
              rss: int | None = None,
              cpu_split: dict[str, float] | None = None) -> dict[str, Any]:
    """The JSON-able figures of one run."""
    every = sorted(v for k in KINDS for v in tally.latencies[k])
    answered = len(every)
    out: dict[str, Any] = {
        "duration_s": round(elapsed, 3),
        "answered": answered,
        "approved": sum(tally.approved.values()),
        "declined": sum(tally.declined.values()),
        "timeouts": tally.timeouts,
        "errors": tally.errors,
        "connections_closed": tally.closed,
        "msg_per_s": round(answered / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_ms": {f"p{q}": _ms(percentile(every, q)) for q in (50, 95, 99)}
        | {"max": _ms(every[-1] if every else None)},
        "by_kind": {},
        "response_codes": dict(sorted(tally.codes.items())),
    }
    for kind in KINDS:
        lat = sorted(tally.latencies[kind])
        out["by_kind"][kind] = {
            "answered": tally.sent[kind], "approved": tally.approved[kind],
            "declined": tally.declined[kind],
            "latency_ms": {f"p{q}": _ms(percentile(lat, q)) for q in (50, 95, 99)},
        }
    if cpu_s is not None:
        out["server_cpu_s"] = round(cpu_s, 3)
        out["server_cpu_us_per_msg"] = round(cpu_s / answered * 1e6, 1) if answered else None
        out["server_cores_used"] = round(cpu_s / elapsed, 2) if elapsed > 0 else None
    if cpu_split and answered:  # a server of several processes: CPU per message of each
        out["server_cpu_us_per_msg_by_process"] = {
            name: round(seconds / answered * 1e6, 1) for name, seconds in cpu_split.items()}
    if rss is not None:
        out["server_rss_mb"] = round(rss / 2**20, 1)
    return out


def render(name: str, figures: dict[str, Any]) -> str:
    """Plain-text lines for one run."""
    lat = figures["latency_ms"]
    lines = [
        f"{name}: {figures['msg_per_s']:,.1f} msg/s over {figures['duration_s']} s "
        f"({figures['answered']} answered: {figures['approved']} approved, "
        f"{figures['declined']} declined, {figures['timeouts']} timed out, "
        f"{figures['errors']} errors)",
        f"  latency ms: p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}",
    ]
    for kind, kf in figures["by_kind"].items():
        if kf["answered"]:
            lines.append(f"  {kind:<6} {kf['answered']:>8} answered  {kf['approved']:>8} approved"
                         f"  {kf['declined']:>6} declined  p50 {kf['latency_ms']['p50']} ms")
    if figures["response_codes"]:
        codes = ", ".join(f"{k}: {v}" for k, v in figures["response_codes"].items())
        lines.append(f"  response codes: {codes}")
    if "server_cpu_us_per_msg" in figures:
        lines.append(f"  server CPU: {figures['server_cpu_us_per_msg']} us/msg "
                     f"({figures['server_cores_used']} cores)")
    if "server_cpu_us_per_msg_by_process" in figures:
        split = ", ".join(f"{name} {value}" for name, value
                          in figures["server_cpu_us_per_msg_by_process"].items())
        lines.append(f"  server CPU by process (us/msg): {split}")
    if "server_rss_mb" in figures:
        lines.append(f"  server RSS: {figures['server_rss_mb']} MB")
    return "\n".join(lines)
