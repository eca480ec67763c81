"""What the simulated terminals send: the mix, pre-built request templates and per-terminal state.

Requests are encoded once per kind and terminal; each send only patches the fixed-width STAN
(and the original RRN of refunds and voids) into a copy of the bytes, so the generator spends its
CPU on the socket, not on pyiso8583. Profiles whose fields are not plain ASCII fall back to a
full encode per request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocol import (
    CardData,
    Codec,
    EntryMode,
    Money,
    Pan,
    RefundReason,
    RefundRequest,
    SaleRequest,
    VoidRequest,
)

KINDS = ("sale", "refund", "void")
DEFAULT_MIX = "sale=60,refund=30,void=10"
DEFAULT_PAN = "4761739001010119"  # a public test card (Luhn-valid)
SALE_MINOR = 10_000
REFUND_MINOR = 500

_STAN_MARK = "918273"
_RRN_MARK = "QZRRNMARK0QZ"


class UsageError(ValueError):
    """A bad command-line value; the message says which option and why."""


def parse_mix(text: str) -> dict[str, int]:
    """``"sale=60,refund=30,void=10"`` -> weights; unknown kinds and bad numbers are errors."""
    mix: dict[str, int] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().partition("=")
        if not sep or name not in KINDS:
            raise UsageError(f"--mix: {part.strip()!r} is not KIND=WEIGHT with KIND one of "
                             f"{', '.join(KINDS)}")
        if not weight.isdigit():
            raise UsageError(f"--mix: weight of {name!r} must be a whole number, got {weight!r}")
        mix[name] = int(weight)
    if mix.get("sale", 0) == 0:
        raise UsageError("--mix: sale needs a weight above 0 (refunds and voids need sales)")
    return mix


class Template:
    """One request encoded once, with the byte offsets of the STAN and original RRN."""

    def __init__(self, codec: Codec, build: Callable[[str, str], dict[str, str]]) -> None:
        self._codec = codec
        self._build = build
        self._bytes = codec.encode(build(_STAN_MARK, _RRN_MARK))
        self._stan_at = self._offset(_STAN_MARK)
        self._rrn_at = self._offset(_RRN_MARK)
        self.patchable = self._stan_at is not None

    def _offset(self, mark: str) -> int | None:
        raw = mark.encode()
        at = self._bytes.find(raw)
        if at < 0 or self._bytes.find(raw, at + 1) >= 0:
            return None
        return at

    def render(self, stan: str, rrn: str = _RRN_MARK) -> bytes:
        """The request bytes for this STAN (and original RRN)."""
        if not self.patchable or (rrn != _RRN_MARK and self._rrn_at is None):
            return self._codec.encode(self._build(stan, rrn))
        buf = bytearray(self._bytes)
        assert self._stan_at is not None
        buf[self._stan_at:self._stan_at + 6] = stan.encode()
        if self._rrn_at is not None:
            buf[self._rrn_at:self._rrn_at + 12] = rrn.encode()
        return bytes(buf)


@dataclass
class Sale:
    """An approved sale a terminal may later refund or void."""

    rrn: str
    refunded: int = 0
    voided: bool = False


@dataclass
class TerminalPlan:
    """One terminal's identity, templates and memory of its own approved sales."""

    tid: str
    mid: str
    templates: dict[str, Template]
    rng: random.Random
    weights: tuple[list[str], list[int]]
    stan: int
    sales: list[Sale] = field(default_factory=list)

    def next_stan(self) -> str:
        """The next trace number (wraps after 999999, skipping 000000)."""
        self.stan = self.stan % 999_999 + 1
        return f"{self.stan:06d}"

    def next_request(self) -> tuple[str, bytes, Sale | None]:
        """Pick a kind from the mix; refunds and voids reference this terminal's own sales."""
        kind = self.rng.choices(*self.weights)[0]
        target: Sale | None = None
        if kind == "refund":
            open_sales = [s for s in self.sales[-20:]
                          if not s.voided and s.refunded + REFUND_MINOR <= SALE_MINOR]
            target = self.rng.choice(open_sales) if open_sales else None
        elif kind == "void":
            fresh = [s for s in self.sales[-20:] if not s.voided and s.refunded == 0]
            target = self.rng.choice(fresh) if fresh else None
        if target is None:
            kind = "sale"
        stan = self.next_stan()
        if target is None:
            return kind, self.templates["sale"].render(stan), None
        return kind, self.templates[kind].render(stan, target.rrn), target

    def settle(self, kind: str, target: Sale | None, approved: bool, rrn: str | None) -> None:
        """Remember the outcome so later refunds and voids stay valid."""
        if not approved:
            return
        if kind == "sale" and rrn:
            self.sales.append(Sale(rrn))
            del self.sales[:-50]  # only recent sales are referenced; keep memory flat
        elif kind == "refund" and target is not None:
            target.refunded += REFUND_MINOR
        elif kind == "void" and target is not None:
            target.voided = True


def build_plans(codec: Codec, terminals: int, mix: dict[str, int], *, mid: str,
                currency: str, pan: str, seed: int, tid_prefix: str = "BN") -> list[TerminalPlan]:
    """One plan per terminal: TIDs ``BN000001``...; STANs start at a random point per run."""
    rng = random.Random(seed)
    now = time.gmtime()
    sent = time.strftime("%m%d%H%M%S", now)
    local_time, local_date = time.strftime("%H%M%S", now), time.strftime("%m%d", now)
    card = CardData(EntryMode.MANUAL, pan=Pan(pan), expiry="3012")
    kinds = [k for k in KINDS if mix.get(k, 0) > 0]
    weights = (kinds, [mix[k] for k in kinds])
    plans = []
    for i in range(terminals):
        tid = f"{tid_prefix}{i + 1:06d}"[:8]
        common: dict[str, Any] = {"terminal_id": tid, "merchant_id": mid, "transmitted_at": sent,
                  "local_time": local_time, "local_date": local_date}

        def sale(stan: str, _rrn: str, common: dict[str, Any] = common) -> dict[str, str]:
            return SaleRequest(stan=stan, card=card, amount=Money(SALE_MINOR, currency),
                               **common).to_fields()

        def refund(stan: str, rrn: str, common: dict[str, Any] = common) -> dict[str, str]:
            return RefundRequest(stan=stan, card=card, amount=Money(REFUND_MINOR, currency),
                                 original_rrn=rrn, reason=RefundReason.RETURN,
                                 **common).to_fields()

        def void(stan: str, rrn: str, common: dict[str, Any] = common) -> dict[str, str]:
            return VoidRequest(stan=stan, card=card, amount=Money(SALE_MINOR, currency),
                               original_rrn=rrn, **common).to_fields()

        templates = {"sale": Template(codec, sale), "refund": Template(codec, refund),
                     "void": Template(codec, void)}
        plans.append(TerminalPlan(tid, mid, templates, random.Random(rng.random()), weights,
                                  stan=rng.randrange(1, 900_000)))
    return plans
