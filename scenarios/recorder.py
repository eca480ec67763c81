"""``poslab-terminal --record FILE``: what the terminal did, as a scenario that replays green.

The terminal knows nothing of the scenario language: it finds this module through the
``poslab.terminal_recorder`` entry point (:mod:`terminal.recording`) and hands it what its
session exchanged.

:class:`Recorder` is pure: the engine hands it one :class:`Exchanged` per completed exchange
(the typed request, the typed answer or none, the reversal's answer) and it keeps the
scenario steps of docs/scenarios.md -- ``sale``, ``refund``, ``void``, ``settle``, ``echo`` and
``advance`` -- ready to be written with :meth:`Recorder.to_yaml`. :class:`RecordFile` writes
that text atomically after every exchange, so a crash leaves the last complete recording.

Replay determinism (``poslab-scenarios run FILE`` starts a fresh host with its own clock and
RRNs):

* references are step ids: every financial step gets an ``id`` (s1, r1, v1, ...) and a refund
  or void of a recorded transaction says ``original: s1``; ``original_rrn`` is written only for
  an original made before the recording started (a fresh host does not know it: the step
  carries a note saying so);
* host-assigned values (RRNs, approval codes) are never expected;
* the clock: when the host's business date (DE15) agrees with the terminal's clock, the file
  starts the simulated clock at the first request's time and moves it with ``advance: {to:}``
  when the business date changed between two requests; when they disagree (a host on a
  simulated clock) ``clock`` is omitted and a business-date change becomes ``advance: {days:}``;
* a settlement is ``settle: {}`` (the runner's own journal totals, as the terminal sends) when
  the terminal's totals are exactly what the recording contains; otherwise the terminal's
  totals are written and the host's 95 expected. On the CUP profile it is always
  ``settle: {}`` expecting the 0510's ``00`` (a CUP host answers 00 whether the totals agree or
  not, and the runner uploads on result flag 2 as the terminal did).

Cards are written as deck names (the terminal's deck is the host's), else as the PAN.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from protocol.codes import EntryMode, NetworkCode, RuleId
from protocol.messages import (
    FinancialRequest,
    FinancialResponse,
    NetworkRequest,
    ReconciliationRequest,
    RefundRequest,
    SaleRequest,
    VoidRequest,
)
from protocol.money import Money
from protocol.specs import DEFAULT_PROFILE
from terminal.config import TerminalConfig
from terminal.cup_session import is_cup
from terminal.recording import RecordError
from terminal.session import Exchanged

__all__ = ["PLUGIN", "Exchanged", "RecordError", "RecordFile", "Recorder", "record_to"]

_ENTRY = {EntryMode.MANUAL: "manual", EntryMode.SWIPE: "swipe", EntryMode.CHIP: "chip",
          EntryMode.CONTACTLESS: "contactless"}
_NETWORK = {NetworkCode.ECHO: "echo", NetworkCode.SIGN_ON: "sign_on",
            NetworkCode.SIGN_OFF: "sign_off"}
_PREFIX = {"sale": "s", "refund": "r", "void": "v"}
_PARAM_ORDER = ("original", "original_rrn", "card", "amount", "reason", "operator", "of_refund",
                "currency", "entry")


@dataclass
class _Sent:
    """A recorded financial step, for references and the batch totals."""

    id: str
    kind: str
    amount: Money
    card: str | None
    effective: bool = False


@dataclass
class Recorder:
    """Scenario steps from terminal exchanges (pure; see the module docstring).

    :ivar host: the host's address, for the header.
    :ivar started: when the recording began (terminal local time), for the header.
    """

    host: str
    started: datetime
    terminal_id: str
    merchant_id: str
    currency: str
    profile: str = DEFAULT_PROFILE
    steps: list[dict[str, Any]] = field(default_factory=list)
    _by_rrn: dict[str, _Sent] = field(default_factory=dict)
    _batch: list[_Sent] = field(default_factory=list)
    _counts: Counter[str] = field(default_factory=Counter)
    _first_at: datetime | None = None
    _pinned: bool = False
    _business_date: date | None = None

    # -- events ------------------------------------------------------------------------------

    def add(self, event: Exchanged) -> None:
        """Turn one exchange into a step (plus an ``advance`` when the host's day moved)."""
        self._clock(event)
        req = event.request
        if isinstance(req, SaleRequest | RefundRequest | VoidRequest):
            self._financial(event, req)
        elif isinstance(req, ReconciliationRequest):
            self._settle(event, req)
        elif isinstance(req, NetworkRequest) and req.code in _NETWORK:
            self._network(event, req)

    def _financial(self, event: Exchanged, req: SaleRequest | RefundRequest | VoidRequest
                   ) -> None:
        kind = "refund" if isinstance(req, RefundRequest) else \
            "void" if isinstance(req, VoidRequest) else "sale"
        self._counts[kind] += 1
        sent = _Sent(f"{_PREFIX[kind]}{self._counts[kind]}", kind, req.amount,
                     self._card(event, req))
        original = None
        if isinstance(req, RefundRequest | VoidRequest) and req.original_rrn:
            original = self._by_rrn.get(req.original_rrn)
        params: dict[str, Any] = {}
        note = None
        if isinstance(req, RefundRequest | VoidRequest):
            if original is not None:
                params["original"] = original.id
            elif req.original_rrn:
                params["original_rrn"] = req.original_rrn
                note = ("the original was made before the recording started: a fresh host "
                        "does not know this RRN")
        if kind != "void" or original is None or req.amount != original.amount:
            params["amount"] = req.amount.format()
        if sent.card and (original is None or sent.card != original.card):
            params["card"] = sent.card
        elif kind == "void" and original is None:
            params["card"] = "unknown card"  # the schema needs one; the note says why
        if isinstance(req, RefundRequest):
            params["reason"] = req.reason.value
            if req.operator and not is_cup(self.profile):  # a CUP 0220 carries no operator
                params["operator"] = req.operator
        if isinstance(req, VoidRequest) and original is None and req.voids_refund:
            params["of_refund"] = True
        if req.amount.currency != self.currency:
            params["currency"] = req.amount.currency
        if kind != "void" and req.card is not None and req.card.entry_mode is not \
                EntryMode.MANUAL:
            params["entry"] = _ENTRY[req.card.entry_mode]
        params = {k: params[k] for k in _PARAM_ORDER if k in params}
        step: dict[str, Any] = {kind: params, "id": sent.id, "expect": _expect(event)}
        if event.response is None:
            note = _timeout_note(event.reversal)
        if note:
            step["note"] = note
        self.steps.append(step)
        response = event.response
        if isinstance(response, FinancialResponse):
            if response.rrn:
                self._by_rrn[response.rrn] = sent
            if response.approved:
                if kind == "void":
                    if original is not None:
                        original.effective = False
                else:
                    sent.effective = True
                    self._batch.append(sent)

    def _card(self, event: Exchanged, req: FinancialRequest) -> str | None:
        if event.card_name:
            return event.card_name
        return req.card.account.digits if req.card is not None else None

    def _settle(self, event: Exchanged, req: ReconciliationRequest) -> None:
        if is_cup(self.profile):
            self._cup_settle(event)
            return
        totals, cur = req.totals, req.totals.currency
        live = [s for s in self._batch if s.effective and s.amount.currency == cur]
        sales = [s.amount.minor for s in live if s.kind == "sale"]
        refunds = [s.amount.minor for s in live if s.kind == "refund"]
        ours = (len(sales), sum(sales), len(refunds), sum(refunds))
        theirs = (totals.debits_count, totals.debits_minor, totals.credits_count,
                  totals.credits_minor)
        params: dict[str, Any] = {}
        expect = _expect(event)
        note = None
        code = event.response.response_code if event.response else None
        if ours == theirs:
            if code == "95":
                # The host held transactions this recording never saw; a fresh host will not.
                expect = {"response": "00"}
                note = (f"the host answered 95 and the terminal uploaded {event.uploaded}; "
                        "a fresh host holds only the recorded transactions")
        else:
            params["totals"] = {"sales_count": totals.debits_count,
                                "sales": Money(totals.debits_minor, cur).format(),
                                "refunds_count": totals.credits_count,
                                "refunds": Money(totals.credits_minor, cur).format()}
            if code in ("00", "95"):
                expect = {"response": "95", "rule": RuleId.RECONCILE_MISMATCH.value}
            note = ("the terminal's batch held transactions made before the recording "
                    "started: a fresh host answers 95 and gets the recorded ones uploaded")
        if cur != self.currency:
            params["currency"] = cur
        step: dict[str, Any] = {"settle": params, "expect": expect}
        if note:
            step["note"] = note
        self.steps.append(step)
        if event.settled:
            self._batch = []

    def _cup_settle(self, event: Exchanged) -> None:
        """A CUP 0500: the runner sends its own journal's CUP totals and uploads on result
        flag 2, as the terminal did."""
        step: dict[str, Any] = {"settle": {}, "expect": _expect(event)}
        if event.uploaded:
            step["note"] = (f"the totals differed while recording (result 2) and the terminal "
                            f"uploaded {event.uploaded}")
        self.steps.append(step)
        if event.settled:
            self._batch = []

    def _network(self, event: Exchanged, req: NetworkRequest) -> None:
        if event.response is None:
            return  # link trouble, not a host decision: a replay could not reproduce it
        code = _NETWORK[req.code]
        step = {"echo": {"code": code} if code != "echo" else {}, "expect": _expect(event)}
        if self.steps and self.steps[-1] == step:
            return  # the idle echo timer: one step stands for a run of identical tests
        self.steps.append(step)

    def _clock(self, event: Exchanged) -> None:
        at = event.at
        if self._first_at is None:
            self._first_at = at
        response = event.response
        if response is None or not response.business_date or at.tzinfo is None:
            return
        day = _full_date(response.business_date, at.date())
        if day is None:
            return
        if self._business_date is None:
            # The host's clock is the terminal's when its business date is the terminal's
            # date give or take one day (time zones, the cut-off).
            first = self._first_at
            self._pinned = first.tzinfo is not None and abs((day - at.date()).days) <= 1
        elif day > self._business_date:
            moved = f"the host's business date moved from {self._business_date} to {day}"
            advance = ({"to": at.isoformat(timespec="seconds")} if self._pinned
                       else {"days": (day - self._business_date).days})
            self.steps.append({"advance": advance, "note": moved})
        if self._business_date is None or day > self._business_date:
            self._business_date = day

    # -- output ------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The scenario as plain data, keys in the order the file shows them."""
        when = self.started.isoformat(timespec="seconds")
        doc: dict[str, Any] = {
            "name": f"recorded at {self.terminal_id} {self.started:%Y-%m-%d %H:%M:%S}",
            "description": f"recorded with poslab-terminal --record on {when} against "
                           f"{self.host}",
            "tags": ["recorded"],
        }
        if self._pinned and self._first_at is not None:
            doc["clock"] = {"start": self._first_at.isoformat(timespec="seconds")}
        terminal = {"tid": self.terminal_id, "mid": self.merchant_id, "currency": self.currency}
        if self.profile != DEFAULT_PROFILE:
            terminal["profile"] = self.profile
        doc["terminal"] = terminal
        doc["steps"] = list(self.steps)
        return doc

    def to_yaml(self) -> str:
        """The scenario file: a comment header, then the YAML document."""
        when = self.started.isoformat(timespec="seconds")
        header = (f"# Recorded by poslab-terminal --record on {when}\n"
                  f"# against the host at {self.host} (terminal {self.terminal_id}, "
                  f"merchant {self.merchant_id}).\n"
                  "# Replay: poslab-scenarios run THIS-FILE (a fresh host with the default "
                  "config;\n# steps refer to each other by id, not by this host's RRNs).\n")
        body = yaml.dump(self.document(), Dumper=_Dumper, sort_keys=False,
                         default_flow_style=None, allow_unicode=True, width=100)
        return header + body


def _expect(event: Exchanged) -> dict[str, Any]:
    response = event.response
    if response is None:
        out: dict[str, Any] = {"timeout": True}
        if event.reversal and event.reversal != "00":
            out["reversal"] = event.reversal
        return out
    out = {"response": response.response_code}
    rule = RuleId.parse(response.rule) if response.rule else None
    if rule is not None:
        out["rule"] = rule.value
    if isinstance(response, FinancialResponse) and response.remaining is not None:
        out["remaining"] = response.remaining.format()
    return out


def _timeout_note(reversal: str | None) -> str:
    if reversal is None:
        return "the host did not answer and the reversal was not acknowledged while recording"
    return f"the host did not answer; the terminal's reversal was answered {reversal}"


def _full_date(mmdd: str, near: date) -> date | None:
    """The date with month-day ``mmdd`` closest to ``near`` (DE15 carries no year)."""
    if len(mmdd) != 4 or not mmdd.isdigit():
        return None
    found = []
    for year in (near.year - 1, near.year, near.year + 1):
        try:
            found.append(date(year, int(mmdd[:2]), int(mmdd[2:])))
        except ValueError:
            continue
    return min(found, key=lambda d: abs((d - near).days), default=None)


class _Dumper(yaml.SafeDumper):
    """Safe YAML in the library files' style: list items indented under their key, and
    strings that would read as numbers or dates ("00", "100.00") double-quoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    plain = tag == "tag:yaml.org,2002:str"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else '"')


def _dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.MappingNode:
    # A mapping of scalars only goes on one line ({card: ..., amount: "1.00"}), quoted or not.
    node = dumper.represent_mapping("tag:yaml.org,2002:map", data)
    node.flow_style = all(isinstance(value, yaml.ScalarNode) for _, value in node.value)
    return node


_Dumper.add_representer(str, _str)
_Dumper.add_representer(dict, _dict)


class RecordFile:
    """Feeds a :class:`Recorder` and rewrites ``path`` atomically after every exchange.

    A write that fails does not disturb the terminal: the error is kept in :attr:`error`
    (the command line reports it on exit) and the next exchange tries again.
    """

    def __init__(self, path: Path, recorder: Recorder) -> None:
        self.path = path
        self.recorder = recorder
        self.error: str | None = None

    @staticmethod
    def check(path: Path) -> None:
        """Raise :class:`RecordError` unless ``path`` can be written (tried, then removed)."""
        if path.is_dir():
            raise RecordError(f"--record {path}: is a directory; give a file name")
        if path.parent.exists() and not path.parent.is_dir():
            raise RecordError(f"--record {path}: {path.parent} is not a directory")
        if not path.parent.is_dir():
            raise RecordError(f"--record {path}: directory {path.parent} does not exist")
        probe = _temp(path)
        try:
            probe.write_text("", encoding="utf-8")
            probe.unlink()
        except OSError as exc:
            raise RecordError(f"--record {path}: cannot write there "
                              f"({exc.strerror or exc})") from None

    def __call__(self, event: Exchanged) -> None:
        """Record ``event`` and rewrite the file."""
        self.recorder.add(event)
        if not self.recorder.steps:
            return
        tmp = _temp(self.path)
        try:
            tmp.write_text(self.recorder.to_yaml(), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            self.error = f"recording to {self.path} failed: {exc.strerror or exc}"
        else:
            self.error = None


def record_to(path: Path, config: TerminalConfig, started: datetime) -> RecordFile:
    """The ``--record`` sink for a terminal with ``config``: append it to the engine's
    observers."""
    return RecordFile(path, Recorder(config.address, started, config.terminal_id,
                                     config.merchant_id, config.currency, config.profile))


class ScenarioRecorder:
    """What the terminal's ``poslab.terminal_recorder`` entry point finds (see
    :class:`terminal.recording.Recorder`)."""

    check = staticmethod(RecordFile.check)
    open = staticmethod(record_to)


PLUGIN = ScenarioRecorder()


def _temp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")
