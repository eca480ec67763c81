"""What running a scenario produced: per-step outcomes with the messages exchanged.

Plain dataclasses, picklable (``--jobs`` sends them between processes) and JSON-able
(:meth:`ScenarioOutcome.to_json`). Field dicts kept here hold the full PAN only in memory; every
rendering goes through :func:`protocol.describe` or :func:`protocol.scrub`, which mask it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from protocol import scrub

Fields = dict[str, str]
Status = Literal["passed", "failed", "skipped", "error", "not run"]


@dataclass
class Exchange:
    """One request and what came back (``response`` None: no answer)."""

    label: str
    request: Fields | None = None
    response: Fields | None = None
    raw_hex: str | None = None  # for send_raw
    note: str = ""


@dataclass
class StepOutcome:
    """How one step went.

    :ivar expected: what the scenario asked for, in words.
    :ivar actual: what happened, in words.
    :ivar rule: the DE44 rule the host fired, if any.
    """

    index: int
    label: str
    line: int
    status: Status = "passed"
    expected: str = ""
    actual: str = ""
    rule: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)


@dataclass
class ScenarioOutcome:
    """How one scenario went."""

    name: str
    where: str
    seed: int
    tags: list[str] = field(default_factory=list)
    status: Status = "passed"
    steps: list[StepOutcome] = field(default_factory=list)
    error: str | None = None
    duration_s: float = 0.0

    @property
    def failed_step(self) -> StepOutcome | None:
        """The first step that failed or broke."""
        return next((s for s in self.steps if s.status in ("failed", "error")), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict with card data masked (requests and responses as field dicts)."""
        data = asdict(self)
        return _mask(data)  # type: ignore[no-any-return]


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
