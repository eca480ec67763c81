"""Lesson mode: ``poslab-scenarios run LESSON.yaml --lesson --host H:P --admin URL``.

A lesson is a scenario played one step at a time against a running host, for a class watching
the host console and terminals. Before each step its ``say:`` line is printed (the step's label
when it has none) and the run waits for Enter (``--no-wait``: it does not, for tests and CI);
then the step is sent and its effect printed: each message out and the answer back (MTI,
transaction type, amount, response code and text, rule, RRN; card numbers masked), or what an
admin step did.

Against a running host the lesson starts from the host's simulated time (``GET /clock``), and,
unless ``--seed`` is given, seeds its STANs from the host's clock and transaction count, so a
lesson played twice on one host sends new transactions rather than retransmissions.
"""

from __future__ import annotations

import asyncio
import sys
import zlib
from collections.abc import Callable
from typing import Any, TextIO

from pydantic import ValidationError

from protocol import response_text, scrub
from protocol.cup import CUP_ROUTES
from protocol.money import Money
from protocol.money import currency as find_currency
from protocol.transactions import TxnType
from scenarios import admin as admin_api
from scenarios.admin import AdminCallError, AdminError
from scenarios.loader import Loaded
from scenarios.outcome import Exchange, ScenarioOutcome, StepOutcome
from scenarios.runner import Session, follow_host_clock, run_scenario
from scenarios.schema import Step

_TXN = {"00": "sale", "02": "void", "20": "refund", "22": "void of refund"}
_NETWORK = {"0800": "network", "0400": "reversal", "0401": "reversal repeat",
            "0500": "settlement", "0320": "batch upload", "0100": "authorization",
            "0220": "completion"}
# A CUP 0200 is a sale, a void, a completion or its void by DE25 and 60.1, not by DE3 alone.
_CUP_TXN = {TxnType.SALE: "sale", TxnType.VOID: "void", TxnType.REFUND: "refund",
            TxnType.AUTHORIZATION: "authorization", TxnType.AUTH_CANCEL: "authorization cancel",
            TxnType.COMPLETION: "completion", TxnType.VOID_COMPLETION: "void of completion"}
ENTER = "press Enter to send"


class LessonPace:
    """Prints each step's ``say:`` line, waits for Enter (unless ``wait`` is False), and
    prints what the step did. ``read_line`` reads a line (blocking) and returns ``""`` at
    end of input, which stops the waiting for the rest of the run."""

    def __init__(self, out: TextIO, wait: bool = True, seeded: bool = False,
                 read_line: Callable[[], str] | None = None) -> None:
        self.out = out
        self.wait = wait
        self.seeded = seeded
        self.read_line = read_line or (lambda: sys.stdin.readline())
        self.total = 0

    async def start(self, session: Session) -> None:
        """Take the host's time (and a fresh seed) before the first step."""
        self.total = len(session.scenario.steps)
        scenario = session.scenario
        title = scenario.name if scenario.name.lower().startswith("lesson") else \
            f"Lesson: {scenario.name}"
        self._print(f"\n{title}")
        if scenario.description:
            self._print(f"  {scenario.description}")
        admin = session.target.admin
        if admin is None:
            return
        try:
            clock = await admin.fetch(admin_api.clock())
            health = await admin.fetch(admin_api.health())
        except (AdminError, AdminCallError, ValidationError):
            return  # no clock to follow: the scenario's own start time stands
        now = clock.now
        follow_host_clock(session, now)
        if not self.seeded:
            count = health.transactions
            session.seed = zlib.crc32(f"{now}/{count}".encode()) % 1_000_000
        self._print(f"  host clock {now}")

    async def before(self, session: Session, index: int, step: Step) -> None:
        """Say what comes, then wait for Enter."""
        self._print(f"\n[{index + 1}/{self.total}] {step.say or step.note or step.label}")
        if not self.wait:
            return
        self.out.write(f"      {ENTER} ")
        self.out.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, self.read_line)
        if line == "":  # end of input: play the rest without stopping
            self.wait = False
            self._print("")

    def after(self, step: Step, result: StepOutcome) -> None:
        """Show the effect: messages and answers, or the admin step's result."""
        for exchange in result.exchanges:
            for line in exchange_lines(exchange):
                self._print(f"      {line}")
        if not result.exchanges and result.actual:
            self._print(f"      {scrub(result.actual)}")
        mark = {"passed": "ok", "skipped": "skipped"}.get(result.status, result.status.upper())
        detail = f": expected {result.expected}; got {result.actual}" \
            if result.status in ("failed", "error") else ""
        self._print(f"      {mark}{scrub(detail)}")

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def exchange_lines(exchange: Exchange) -> list[str]:
    """``→ 0200 sale 120.00 CNY STAN 000123`` and ``← 0210 00 Approved RRN ...`` lines."""
    lines = []
    if exchange.request is not None:
        lines.append(f"→ {_describe(exchange.request)}")
    elif exchange.raw_hex is not None:
        lines.append(f"→ raw bytes {exchange.raw_hex[:32]}...")
    if exchange.response is not None:
        lines.append(f"← {_describe(exchange.response)}")
    else:
        lines.append("← no answer" + (f" ({exchange.note})" if exchange.note else ""))
    return lines


def _cup_kind(request_mti: str, fields: dict[str, str]) -> str | None:
    """The transaction a CUP financial message (one with DE25 and DE60) is, by its profile's
    routes; None for any other message."""
    if "60" not in fields or "25" not in fields:
        return None
    for route in CUP_ROUTES:
        if (route.txn in _CUP_TXN and request_mti in route.mtis
                and route.matches(fields.get("3"), fields)):
            return _CUP_TXN[route.txn]
    return None


def _describe(fields: dict[str, str]) -> str:
    mti = fields.get("t", "?")
    request_mti = mti[:2] + str(int(mti[2]) - 1) + mti[3] if mti[2:3].isdigit() and \
        int(mti[2]) % 2 else mti
    kind = _cup_kind(request_mti, fields) or (
        _TXN.get(fields.get("3", "")[:2], "financial") if request_mti == "0200" else
        _NETWORK.get(request_mti, "message"))
    parts = [mti, kind]
    amount, currency = fields.get("4"), fields.get("49")
    if amount and amount.isdigit():
        parts.append(_money(int(amount), currency))
    if "39" in fields:
        parts.append(f"{fields['39']} {response_text(fields['39'])}")
    if fields.get("44"):
        parts.append(f"rule {fields['44']}")
    if fields.get("37"):
        parts.append(f"RRN {fields['37']}")
    if "11" in fields:
        parts.append(f"STAN {fields['11']}")
    return scrub(" ".join(parts))


def _money(minor: int, currency: str | None) -> str:
    try:
        return str(Money(minor, find_currency(currency).alpha)) if currency else str(minor)
    except ValueError:
        return str(minor)


async def run_lessons(items: list[Loaded], make_target: Any, seed: int | None,
                      pace: LessonPace) -> list[ScenarioOutcome]:
    """Play each lesson in turn, one step at a time."""
    return [await run_scenario(loaded, make_target, seed, pace=pace) for loaded in items]
