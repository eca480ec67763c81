"""Turn outcomes into what people and CI read: failure blocks, a summary table, JUnit, JSON.

A failure block names the scenario, file:line of the step, the seed to replay it, expected vs
actual, the rule the host fired with its explanation, and every message of the step rendered
field by field with :func:`protocol.describe` (PAN masked, secrets hidden). Nothing here prints
wall-clock times except the summary's duration line, so the same seed gives the same text.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from protocol import RuleId, describe, scrub
from scenarios.outcome import ScenarioOutcome, StepOutcome


def render_failure(outcome: ScenarioOutcome) -> str:
    """The full explanation of a failed or broken scenario."""
    lines = [f"FAILED {outcome.name}", f"  file: {outcome.where}", f"  seed: {outcome.seed} "
             f"(replay: poslab-scenarios run {outcome.where.split('[')[0]} --seed {outcome.seed})"]
    if outcome.error:
        lines.append(f"  error: {outcome.error}")
    step = outcome.failed_step
    if step is not None:
        lines += render_step(step, outcome.where.split("[")[0])
    return scrub("\n".join(lines))


def render_step(step: StepOutcome, file: str) -> list[str]:
    """Expected vs actual, rule and the step's messages."""
    lines = [f"  step {step.index} ({step.label}) at {file}:{step.line}",
             f"    expected: {step.expected or '-'}", f"    actual:   {step.actual or '-'}"]
    if step.rule:
        rule = RuleId.parse(step.rule)
        lines.append(f"    host rule: {step.rule}" + (f" -- {rule.explanation}" if rule else ""))
    for exchange in step.exchanges:
        lines.append(f"    -- {exchange.label} --")
        if exchange.raw_hex is not None:
            lines.append(f"    sent raw: {exchange.raw_hex}")
        if exchange.request is not None:
            lines.append("    request:")
            lines += ["      " + ln for ln in describe(exchange.request).splitlines()]
        if exchange.response is not None:
            lines.append("    response:")
            lines += ["      " + ln for ln in describe(exchange.response).splitlines()]
        elif exchange.request is not None or exchange.raw_hex is not None:
            lines.append(f"    response: none{' (' + exchange.note + ')' if exchange.note else ''}")
    return lines


def progress_mark(outcome: ScenarioOutcome) -> str:
    """One character per finished scenario, pytest style."""
    return {"passed": ".", "failed": "F", "error": "E"}.get(outcome.status, "s")


def summary_table(outcomes: Sequence[ScenarioOutcome]) -> str:
    """One row per scenario (status, steps run/skipped, name) and the totals line."""
    rows = [("STATUS", "STEPS", "SKIPPED", "SCENARIO")]
    for o in outcomes:
        ran = sum(1 for s in o.steps if s.status not in ("not run",))
        skipped = sum(1 for s in o.steps if s.status == "skipped")
        rows.append((o.status.upper(), f"{ran}/{len(o.steps)}", str(skipped), o.name))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    text = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    return "\n".join(text) + "\n" + totals_line(outcomes)


def totals_line(outcomes: Sequence[ScenarioOutcome]) -> str:
    """``40 scenarios: 38 passed, 1 failed, 1 error``."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    skipped = sum(1 for o in outcomes for s in o.steps if s.status == "skipped")
    if skipped:
        parts.append(f"{skipped} steps skipped")
    return f"{len(outcomes)} scenarios: " + ", ".join(parts)


def write_json(outcomes: Sequence[ScenarioOutcome], path: Path) -> None:
    """All outcomes with every step and message (card data masked)."""
    doc = {"scenarios": [o.to_json() for o in outcomes], "summary": totals_line(outcomes)}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def write_junit(outcomes: Sequence[ScenarioOutcome], path: Path) -> None:
    """JUnit XML: one testcase per scenario, failures with the rendered explanation."""
    suite = ET.Element("testsuite", name="poslab-scenarios", tests=str(len(outcomes)),
                       failures=str(sum(o.status == "failed" for o in outcomes)),
                       errors=str(sum(o.status == "error" for o in outcomes)),
                       skipped="0", time=f"{sum(o.duration_s for o in outcomes):.3f}")
    for o in outcomes:
        case = ET.SubElement(suite, "testcase", classname=o.where.split("[")[0], name=o.name,
                             time=f"{o.duration_s:.3f}")
        if o.status in ("failed", "error"):
            step = o.failed_step
            message = f"{step.label}: expected {step.expected}; got {step.actual}" if step \
                else (o.error or o.status)
            node = ET.SubElement(case, "failure" if o.status == "failed" else "error",
                                 message=scrub(message))
            node.text = render_failure(o)
        skipped = [s for s in o.steps if s.status == "skipped"]
        if skipped:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f"skipped step {s.index} ({s.label}): {s.actual}"
                                 for s in skipped)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
