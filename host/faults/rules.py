"""Fault injection rules: which requests to disturb, and how.

Pure: no I/O, no clock, no reactor. The server asks :meth:`FaultRegistry.match` once per decoded
request and carries out the returned :class:`FaultDecision`; the admin API and the config add,
list and delete rules through the same registry.

A rule matches on any of MTI, processing code, PAN, terminal id and an amount range (all given
conditions must hold) and fires for the next ``count`` matching requests (``None`` = every one).
Its action is one of:

===========  ===================================================================
``delay``    wait ``delay_ms`` before answering
``drop``     send nothing (the terminal times out and reverses)
``close``    close the connection without answering
``respond``  answer with ``response_code`` and DE44 ``FORCED``
``garble``   send a frame whose payload is not a message
``duplicate`` send the response twice
===========  ===================================================================

``process`` is always explicit, because "approved but the answer was lost" (``process: true``)
and "never arrived" (``process: false``) are different failures with different correct outcomes.
For ``delay`` it says whether the request is processed before the wait or after it.

A PAN condition is held only as a keyed hash (HMAC-SHA-256 under a per-registry random key) and
its masked form; the full PAN is never stored in the rule, listed or logged.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from host.faults.delivery import FaultDecision
from host.wire import Echo, forced_answer, mti_of, pan_of
from protocol import RuleId, mask_pan

Action = Literal["delay", "drop", "close", "respond", "garble", "duplicate"]


class FaultError(ValueError):
    """A fault rule is invalid; the message names the rule and the field."""


class FaultRule(BaseModel):
    """One fault rule as written in config (``[[faults]]``) or posted to ``/faults``.

    ``pan`` is accepted as input only: the registry replaces it with a keyed hash at once.
    """

    # strict: JSON true is not the number 1, nor 1 the boolean true (pydantic would convert)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str | None = Field(default=None, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    action: Action
    process: bool
    mti: str | None = Field(default=None, pattern=r"^\d{4}$")
    processing_code: str | None = Field(default=None, pattern=r"^\d{6}$")
    pan: str | None = Field(default=None, pattern=r"^\d{12,19}$", repr=False)
    tid: str | None = Field(default=None, min_length=1, max_length=16)
    amount_min_minor: int | None = Field(default=None, ge=0)
    amount_max_minor: int | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=1)
    delay_ms: int | None = Field(default=None, ge=0, le=600_000)
    response_code: str | None = Field(default=None, pattern=r"^[0-9A-Z]{2}$")

    @model_validator(mode="after")
    def _consistent(self) -> FaultRule:
        if self.action == "delay" and self.delay_ms is None:
            raise ValueError("action 'delay' needs delay_ms")
        if self.action != "delay" and self.delay_ms is not None:
            raise ValueError(f"delay_ms only applies to action 'delay', not {self.action!r}")
        if self.action == "respond" and self.response_code is None:
            raise ValueError("action 'respond' needs response_code")
        if self.action != "respond" and self.response_code is not None:
            raise ValueError(f"response_code only applies to action 'respond', not {self.action!r}")
        if self.action == "duplicate" and not self.process:
            raise ValueError("action 'duplicate' needs process = true (there is no response "
                             "to send twice otherwise)")
        lo, hi = self.amount_min_minor, self.amount_max_minor
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("amount_min_minor is greater than amount_max_minor")
        return self


def parse_rule(data: Mapping[str, Any], where: str = "fault") -> FaultRule:
    """Validate one rule from JSON/TOML data; errors name ``where`` and the offending key."""
    if not isinstance(data, Mapping):
        raise FaultError(f"{where}: expected an object, got {type(data).__name__}")
    try:
        return FaultRule.model_validate(dict(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            # Never echo a PAN value back: pydantic quotes input in some messages.
            problems.append(f"{where}.{loc}: {msg}" if loc else f"{where}: {msg}")
        raise FaultError("; ".join(problems)) from None


class _Entry:
    """A rule in the registry with its live counters; the PAN only as a keyed hash."""

    def __init__(self, fault_id: str, rule: FaultRule, pan_hash: bytes | None) -> None:
        self.id = fault_id
        self.rule = rule.model_copy(update={"id": fault_id, "pan": None})
        self.pan_hash = pan_hash
        self.pan_masked = mask_pan(rule.pan) if rule.pan else None
        self.remaining = rule.count
        self.applied = 0

    def to_json(self) -> dict[str, object]:
        out = self.rule.model_dump(exclude_none=True)
        if self.pan_masked:
            out["pan"] = self.pan_masked
        out["applied"] = self.applied
        if self.remaining is not None:
            out["remaining"] = self.remaining
        return out


class FaultRegistry:
    """The live set of fault rules, in insertion order; the first matching rule wins.

    Thread-safe (the admin API and the server may run on different threads in some setups).
    """

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._ids = itertools.count(1)
        for rule in rules:
            self.add(rule)

    def _hash(self, pan: str) -> bytes:
        return hmac.new(self._key, pan.encode(), hashlib.sha256).digest()

    def add(self, rule: FaultRule) -> dict[str, object]:
        """Add a rule (an id is assigned when it has none); returns its JSON view."""
        with self._lock:
            fault_id = rule.id or f"f{next(self._ids)}"
            while fault_id in self._entries and rule.id is None:
                fault_id = f"f{next(self._ids)}"
            if fault_id in self._entries:
                raise FaultError(f"fault id {fault_id!r} already exists")
            entry = _Entry(fault_id, rule, self._hash(rule.pan) if rule.pan else None)
            self._entries[fault_id] = entry
            return entry.to_json()

    def add_json(self, data: object, where: str = "fault") -> builtins.list[dict[str, object]]:
        """Add one rule (an object) or several (a list of objects); all or none are added."""
        items = data if isinstance(data, list) else [data]
        rules = [parse_rule(item, f"{where}[{i}]" if isinstance(data, list) else where)
                 for i, item in enumerate(items)]
        with self._lock:
            taken = set(self._entries)
            for rule in rules:
                if rule.id is not None and rule.id in taken:
                    raise FaultError(f"fault id {rule.id!r} already exists")
                if rule.id is not None:
                    taken.add(rule.id)
        return [self.add(rule) for rule in rules]

    def list(self) -> list[dict[str, object]]:
        """Every rule with its counters, PANs masked."""
        with self._lock:
            return [e.to_json() for e in self._entries.values()]

    def delete(self, fault_id: str) -> bool:
        """Remove one rule; False when there was no such id."""
        with self._lock:
            return self._entries.pop(fault_id, None) is not None

    def clear(self) -> int:
        """Remove every rule; returns how many there were."""
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            return n

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, fields: Mapping[str, str]) -> FaultDecision | None:
        """The fault to apply to this decoded request, counting it as applied; None for none."""
        if not self._entries:  # the hot path: no rules, no lock, no hashing
            return None
        with self._lock:
            pan_hash: bytes | None = None
            for entry in self._entries.values():
                if entry.remaining == 0 or not self._matches(entry, fields):
                    continue
                if entry.pan_hash is not None:
                    if pan_hash is None:
                        pan = pan_of(fields)
                        pan_hash = self._hash(pan.digits) if pan else b""
                    if not hmac.compare_digest(pan_hash, entry.pan_hash):
                        continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                entry.applied += 1
                rule = entry.rule
                return FaultDecision(entry.id, rule.action, rule.process,
                                     rule.delay_ms or 0, rule.response_code)
        return None

    @staticmethod
    def _matches(entry: _Entry, fields: Mapping[str, str]) -> bool:
        rule = entry.rule
        echo = Echo.of(fields)
        if rule.mti is not None and mti_of(fields) != rule.mti:
            return False
        if rule.processing_code is not None and echo.processing_code != rule.processing_code:
            return False
        if rule.tid is not None and echo.terminal_id.strip() != rule.tid.strip():
            return False
        if rule.amount_min_minor is not None or rule.amount_max_minor is not None:
            text = echo.amount_text or ""
            if not text.isdigit():
                return False
            amount = int(text)
            if rule.amount_min_minor is not None and amount < rule.amount_min_minor:
                return False
            if rule.amount_max_minor is not None and amount > rule.amount_max_minor:
                return False
        return True


def forced_response(request: Mapping[str, str], code: str,
                    processed: Mapping[str, str] | None = None) -> dict[str, str]:
    """The field dict of a ``respond`` fault's answer: DE39 ``code``, DE44 ``FORCED``.

    When the request was processed, the real response is the base (its RRN stays, so the
    terminal can still refer to it); otherwise the answer echoes the request's ids.
    """
    return forced_answer(request, code, RuleId.FORCED.value, processed)

