"""What the simulated terminals send: the mix, pre-built request templates and per-terminal state.

Requests are built by the terminal session's request builder
(:func:`terminal.session.build_request`, the same the TUI and the scenario runner use) and
encoded once per kind and terminal; each send only patches the fixed-width STAN (and the
original RRN of refunds and voids) into a copy of the bytes, so the generator spends its CPU on
the socket, not on pyiso8583. Profiles whose fields are not plain ASCII fall back to a full
encode per request. This lean path keeps no journal: a bench terminal never reverses.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocol import Codec, EntryMode, Money, Pan, RefundReason
from protocol.messages import response_mti
from terminal.cards import Card
from terminal.config import TerminalConfig
from terminal.flow import Draft, Original
from terminal.journal import TxnKind
from terminal.session import build_request

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
        fields = build(_STAN_MARK, _RRN_MARK)
        self.answer_mti = response_mti(fields["t"])
        self._bytes = codec.encode(fields)
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
    #: the correlation key (response MTI, STAN) of the answer to the last request
    answer_key: tuple[str, str] = ("", "")

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
        template = self.templates[kind]
        self.answer_key = (template.answer_mti, stan)
        if target is None:
            return kind, template.render(stan), None
        return kind, template.render(stan, target.rrn), target

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
    now = datetime.now(UTC)
    card = Card("bench", Pan(pan), "3012", "")
    kinds = [k for k in KINDS if mix.get(k, 0) > 0]
    weights = (kinds, [mix[k] for k in kinds])
    sale = Draft(TxnKind.SALE, Money(SALE_MINOR, currency), card, EntryMode.MANUAL)
    refund = Draft(TxnKind.REFUND, Money(REFUND_MINOR, currency), card, EntryMode.MANUAL,
                   reason=RefundReason.RETURN)
    void = Draft(TxnKind.VOID, Money(SALE_MINOR, currency), card, EntryMode.MANUAL)
    plans = []
    for i in range(terminals):
        tid = f"{tid_prefix}{i + 1:06d}"[:8]
        config = TerminalConfig(terminal_id=tid, merchant_id=mid, currency=currency)

        def builder(draft: Draft, config: TerminalConfig = config
                    ) -> Callable[[str, str], dict[str, str]]:
            def build(stan: str, rrn: str) -> dict[str, str]:
                referenced = draft if draft.kind is TxnKind.SALE else \
                    Draft(draft.kind, draft.amount, draft.card, draft.entry_mode, Original(rrn),
                          draft.reason)
                return build_request(referenced, stan, config, now).to_fields()
            return build

        templates = {"sale": Template(codec, builder(sale)),
                     "refund": Template(codec, builder(refund)),
                     "void": Template(codec, builder(void))}
        plans.append(TerminalPlan(tid, mid, templates, random.Random(rng.random()), weights,
                                  stan=rng.randrange(1, 900_000)))
    return plans
