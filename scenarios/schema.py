"""The scenario language as pydantic models: what a scenario file may say, and nothing else.

A scenario file is one YAML mapping (see ``docs/scenarios.md`` for every key with examples)::

    name: partial refunds never exceed the sale       # required
    description: one line saying what it teaches      # optional
    tags: [refund, partial]                           # optional, for --tags and -k
    seed: 7                                           # optional; --seed overrides
    clock: {start: "2026-11-27T09:00:00+08:00"}       # optional simulated clock start
    host: {refund: {window_days: 30}}                 # optional host config overrides
    terminal: {tid: "T0000001", mid: "M00000000000001", currency: CNY, profile: cup}
    profiles: [iso87-ascii, iso87-ascii-tpdu]          # optional: the profiles it is for
    vars: {big: "100.00"}                             # ${big} anywhere below
    cases: [{id: small, amount: "1.00"}, ...]         # one scenario per case
    steps: [...]                                      # required, at least one

Every step is a mapping with exactly one *verb* key (``sale``, ``authorize``, ``complete``,
``refund``,
``void``, ``reverse``, ``settle``, ``echo``, ``advance``, ``check``, ``approve_review``,
``reject_review``, ``send_raw``, ``fault``, ``clear_faults``, ``sign_on``) plus optional ``id``,
``note``, ``say`` (the line lesson mode shows before the step), ``repeat``, ``expect`` and
``profiles`` (the wire profiles the step means something on; on others it is skipped and the
report says why). ``terminal.profile`` (or ``poslab-scenarios run --profile``, which wins)
chooses the profile the scenario's terminal speaks. The
loader (:mod:`scenarios.loader`) expands ``vars``, ``cases`` and ``repeat`` before these models
see the data, and maps every validation error back to its file, line and column.

Amounts are decimal strings in major units (``"100.00"``); plain integers are accepted, floats
are refused because YAML would silently round them.
"""

from __future__ import annotations

import difflib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from protocol.codes import RefundReason, RuleId
from protocol.security import Key, KeyAlgorithm, SecurityError
from protocol.specs import PROFILES

VERBS = (
    "sale", "authorize", "complete", "refund", "void", "reverse", "settle", "echo", "advance",
    "check", "approve_review", "reject_review", "send_raw", "fault", "clear_faults", "sign_on",
)  # fmt: skip


def _amount(value: object) -> object:
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError('write amounts as quoted decimal strings, e.g. "100.00"')
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("an amount is a decimal string such as \"12.50\"")
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not number.is_finite() or number < 0 or number.as_tuple().exponent < -3:  # type: ignore[operator]
        raise ValueError(f"{value!r} is not a valid amount (>= 0, at most 3 decimals)")
    return value.strip()


def _code(value: object) -> object:
    # YAML reads an unquoted 13 as an int and 05 as octal 5: accept both as two-digit codes.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99:
        return f"{value:02d}"
    if isinstance(value, str) and len(value) == 2 and value.isalnum():
        return value.upper()
    raise ValueError("a response code is two characters, e.g. \"00\" or \"13\"")


def _rule(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("a rule is a DE44 rule id such as REFUND_EXCEEDS_REMAINING")
    if RuleId.parse(value) is None:
        # cutoff 0.8: typos (REFUND_COUNT_LIMT) find their rule; a different rule that only
        # shares a prefix (REFUND_TOO_BIG -> REFUND_COUNT_LIMIT) is not offered.
        close = difflib.get_close_matches(value.upper(), [r.value for r in RuleId], n=3,
                                          cutoff=0.8)
        hint = f"; did you mean {' or '.join(close)}?" if close else " (see docs/scenarios.md)"
        raise ValueError(f"unknown rule id {value!r}{hint}")
    return value


def _text(value: object) -> object:
    # TIDs, MIDs, STANs and PAN-like values written unquoted arrive as ints.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _profile(value: object) -> object:
    if not isinstance(value, str) or value not in PROFILES:
        raise ValueError(f"unknown wire profile {value!r}; choose one of: "
                         f"{', '.join(sorted(PROFILES))}")
    return value


def _pin(value: object) -> object:
    value = _text(value)
    if not (isinstance(value, str) and value.isdigit() and 4 <= len(value) <= 12):
        raise ValueError('a PIN is 4 to 12 digits in quotes, e.g. "1234"')
    return value


def _approval_code(value: object) -> object:
    value = _text(value)
    if not (isinstance(value, str) and len(value) == 6 and value.isascii()
            and value.replace(" ", "0").isalnum()):
        raise ValueError('an approval code (DE38) is 6 letters or digits in quotes, '
                         'e.g. "A1B2C3"')
    return value


def _hex(value: object) -> object:
    value = _text(value)
    if not isinstance(value, str) or not value or any(
            c not in "0123456789ABCDEFabcdef" for c in value):
        raise ValueError("write keys, check values and KSNs as hexadecimal text in quotes")
    return value.upper()


Amount = Annotated[str, BeforeValidator(_amount)]
Code = Annotated[str, BeforeValidator(_code)]
Rule = Annotated[str, BeforeValidator(_rule)]
Text = Annotated[str, BeforeValidator(_text)]
Pin = Annotated[str, BeforeValidator(_pin)]
Profile = Annotated[str, BeforeValidator(_profile)]
Hex = Annotated[str, BeforeValidator(_hex)]
ApprovalCode = Annotated[str, BeforeValidator(_approval_code)]
Entry = Literal["manual", "swipe", "chip", "contactless"]
Reason = Literal["transaction_failure", "payment_error", "product_recall", "return", "other"]
assert set(Reason.__args__) == {r.value for r in RefundReason}  # type: ignore[attr-defined]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Model):
    """What the host must answer.

    :ivar response: DE39 of the answer.
    :ivar rule: DE44 rule id of the answer (poslab hosts put one on every decline).
    :ivar timeout: the host must leave the request unanswered; the runner then plays the
        terminal's reversal (0400, then 0401 repeats) and checks it is answered ``reversal``.
    :ivar reversal: DE39 the reversal after a timeout must get (default ``"00"``).
    :ivar closed: the host must close the connection instead of answering.
    :ivar remaining: the remaining refundable amount the answer carries in DE54.
    :ivar approval_code: whether DE38 must be present (true) or absent (false).
    :ivar fields: exact values of other response fields, keyed by field number.
    :ivar keys: for ``sign_on``: ``received`` (new working keys, each matching its check value,
        different from the ones held before), ``refused`` (every try's keys failed their check
        values) or ``none`` (the answer carried no keys).
    """

    response: Code | None = None
    rule: Rule | None = None
    timeout: bool = False
    reversal: Code = "00"
    closed: bool = False
    remaining: Amount | None = None
    approval_code: bool | None = None
    fields: dict[Text, Text] | None = None
    keys: Literal["received", "refused", "none"] | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> Expect:
        answered = self.response or self.rule or self.remaining or self.fields
        if self.timeout and (answered or self.closed):
            raise ValueError("timeout: true means no answer: drop response/rule/fields/closed")
        if self.closed and answered:
            raise ValueError("closed: true means no answer: drop response/rule/fields")
        return self


class _Routing(_Model):
    """Which terminal sends the message and with which trace number."""

    terminal: Text | None = None  # DE41; default: the scenario's terminal
    merchant: Text | None = None  # DE42; default: the scenario's merchant
    stan: Text | None = Field(default=None, pattern=r"^\d{6}$")  # default: next from the seed
    #: a deliberate MAC fault on this request: a wrong MAC, or none at all
    mac: Literal["bad", "missing"] | None = None


class CardPayment(_Routing):
    """``sale`` (0200/000000) and ``authorize`` (0100): charge or hold an amount on a card."""

    card: Text
    amount: Amount
    currency: str | None = None  # ISO 4217 alpha or numeric; default: the terminal's
    entry: Entry = "manual"
    pin: Pin | None = None  # the PIN the cardholder types (right or wrong): DE52 + DE53


_MMDD = r"^(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$"


class Refund(_Routing):
    """``refund`` (0200/200000): money back, referencing a sale by step id or by RRN.

    With neither ``original`` nor ``original_rrn`` the refund is unreferenced (no DE37).
    ``card`` defaults to the original sale's card.
    """

    original: str | None = None
    original_rrn: Text | None = None
    #: the original's date (MMDD) as the cashier keys it from the slip with ``original_rrn``;
    #: a CUP refund sends it in 61.3 (the generic refund names its original by RRN alone)
    original_date: Text | None = Field(default=None, pattern=_MMDD)
    amount: Amount
    card: Text | None = None
    reason: Reason = "other"
    evidence: str | None = None
    operator: str | None = None
    currency: str | None = None
    entry: Entry = "manual"

    @model_validator(mode="after")
    def _one_original(self) -> Refund:
        if self.original and self.original_rrn:
            raise ValueError("give original (a step id) or original_rrn, not both")
        if not (self.original or self.original_rrn or self.card):
            raise ValueError("an unreferenced refund needs a card")
        if self.original_date and not self.original_rrn:
            raise ValueError("original_date goes with original_rrn (a step's date is known)")
        return self


class Complete(_Routing):
    """``complete`` (0220): capture all or part of an ``authorize`` step's hold.

    ``original`` names the authorize step (its RRN and approval code go in DE37/DE38);
    ``original_rrn`` with ``approval_code`` (and ``amount``, ``card``) names a hold no step
    made. ``amount`` defaults to
    the hold's, ``card`` to the hold's; ``approval_code`` with ``original`` quotes another code
    (a hold the host cannot find).
    """

    original: str | None = None
    original_rrn: Text | None = None
    approval_code: ApprovalCode | None = None
    amount: Amount | None = None
    card: Text | None = None
    currency: str | None = None

    @model_validator(mode="after")
    def _one_original(self) -> Complete:
        if bool(self.original) == bool(self.original_rrn):
            raise ValueError("give exactly one of original (an authorize step id) or "
                             "original_rrn")
        if self.original_rrn and not (self.approval_code and self.amount and self.card):
            raise ValueError("a completion by original_rrn needs approval_code, amount and "
                             "card")
        return self


class Void(_Routing):
    """``void`` (0200/020000, or 220000 for a refund): cancel a transaction of the open batch.

    ``amount`` defaults to the original's (a different amount tests VOID_AMOUNT_MISMATCH).
    """

    original: str | None = None
    original_rrn: Text | None = None
    amount: Amount | None = None
    card: Text | None = None
    currency: str | None = None
    of_refund: bool | None = None  # default: true when the original step was a refund

    @model_validator(mode="after")
    def _one_original(self) -> Void:
        if bool(self.original) == bool(self.original_rrn):
            raise ValueError("give exactly one of original (a step id) or original_rrn")
        if self.original_rrn and not (self.amount and self.card):
            raise ValueError("a void by original_rrn needs amount and card")
        return self


class Reverse(_Routing):
    """``reverse`` (0400, or 0401 with ``repeat: true``): undo an earlier step's request.

    ``original`` names the step; an original that was never sent is described with
    ``card``/``amount``/``kind`` and the ``stan`` it will use (reversal before its original).
    """

    original: str | None = None
    repeat: bool = False
    card: Text | None = None
    amount: Amount | None = None
    currency: str | None = None
    kind: Literal["sale", "refund", "authorize", "void"] = "sale"

    @model_validator(mode="after")
    def _target(self) -> Reverse:
        if not self.original and not (self.stan and self.amount and self.card):
            raise ValueError("give original (a step id), or stan + amount + card")
        return self


class Totals(_Model):
    """Batch totals the terminal claims in its 0500: sales and refunds, counts and amounts."""

    sales_count: int = 0
    sales: Amount = "0"
    refunds_count: int = 0
    refunds: Amount = "0"


class Settle(_Model):
    """``settle`` (0500): close the terminal's batch.

    ``totals: journal`` (default) sends what the runner's terminal journal adds up to; a
    ``Totals`` mapping sends given totals (to force 95). On 95 with ``upload: true`` the runner
    uploads each journal transaction (0320) and closes with 0500/960000, which must get 00.
    ``expect`` applies to the first 0510.
    """

    terminal: Text | None = None
    merchant: Text | None = None
    currency: str | None = None
    totals: Literal["journal"] | Totals = "journal"
    upload: bool = True


class Echo(_Model):
    """``echo`` (0800): network management; ``code`` echo (301), sign_on (001), sign_off (002)."""

    code: Literal["echo", "sign_on", "sign_off"] = "echo"
    terminal: Text | None = None
    merchant: Text | None = None


class Advance(_Model):
    """``advance``: move the host's simulated clock (admin API); exactly one key."""

    seconds: int | None = Field(default=None, ge=0)
    minutes: int | None = Field(default=None, ge=0)
    hours: int | None = Field(default=None, ge=0)
    days: int | None = Field(default=None, ge=0)
    business_days: int | None = Field(default=None, ge=0)
    to: datetime | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Advance:
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of seconds, minutes, hours, days, "
                             "business_days, to")
        if self.to is not None and self.to.tzinfo is None:
            raise ValueError("'to' needs a UTC offset, e.g. 2026-11-28T09:00:00+08:00")
        return self


class KeyState(_Model):
    """``check: {keys: ...}``: the scenario terminal's key state (check values, never keys).

    :ivar working: whether working keys from a sign-on are held.
    :ivar tmk_kcv: / :ivar pin_kcv: / :ivar mac_kcv: leading hex digits of a check value.
    :ivar ksn_counter: the DUKPT transaction counter of the last KSN used.
    """

    working: Literal["present", "absent"] | None = None
    tmk_kcv: Hex | None = None
    pin_kcv: Hex | None = None
    mac_kcv: Hex | None = None
    ksn_counter: int | None = Field(default=None, ge=0)


class Check(_Model):
    """``check``: assert host state through the admin API.

    ``transaction`` (a step id or an RRN) with any of the state/amount keys, ``rule`` (the DE44
    rule id it ended with) and ``rules`` (names of host checks that ran, e.g. refund_window);
    ``ledger: verified``; ``settlement`` (date, net, funding_date, status, ...);
    ``notification`` (kind and optional transaction); ``reviews`` (state -> count); in
    ``settlement``/``notification``, ``absent: true`` asserts no such row. Amounts are major
    units.
    """

    transaction: Text | None = None
    refunded: Amount | None = None
    remaining: Amount | None = None
    amount: Amount | None = None
    capture_state: str | None = None
    refund_state: str | None = None
    settlement_state: str | None = None
    state: str | None = None
    reason: Reason | None = None
    rule: Rule | None = None
    rules: list[str] | None = None
    ledger: Literal["verified"] | None = None
    settlement: dict[str, Any] | None = None
    notification: dict[str, Any] | None = None
    reviews: dict[str, int] | None = None
    keys: KeyState | None = None

    @model_validator(mode="after")
    def _something(self) -> Check:
        tx_keys = ("refunded", "remaining", "amount", "capture_state", "refund_state",
                   "settlement_state", "state", "reason", "rule", "rules")
        if any(getattr(self, k) is not None for k in tx_keys) and not self.transaction:
            raise ValueError("transaction state checks need 'transaction: <step id or RRN>'")
        if not (self.transaction or self.ledger or self.settlement or self.notification
                or self.reviews is not None or self.keys):
            raise ValueError("check what? give transaction, ledger, settlement, notification, "
                             "reviews or keys")
        return self


class Review(_Model):
    """``approve_review`` / ``reject_review``: act on a refund held for review.

    ``refund`` names the refund step (its review is looked up); ``review_id`` gives it directly.
    """

    refund: str | None = None
    review_id: int | None = None
    approver: str
    note: str = ""
    reason: str = ""

    @model_validator(mode="after")
    def _target(self) -> Review:
        if (self.refund is None) == (self.review_id is None):
            raise ValueError("give exactly one of refund (a step id) or review_id")
        return self


class SendRaw(_Model):
    """``send_raw``: bytes the runner writes as they are (hex), framed unless ``frame: false``."""

    hex: str = Field(pattern=r"^([0-9A-Fa-f]{2})+$")
    frame: bool = True


def _raw(value: object) -> object:
    return {"hex": value.replace(" ", "")} if isinstance(value, str) else value


class Fault(_Model):
    """``fault``: install a host fault rule (admin ``POST /faults``) for the next requests.

    ``action``: delay (``ms``), drop, close, respond (``code``, DE44 ``FORCED``), garble,
    duplicate. ``process`` (required) says whether the host books the request before the fault:
    "approved but the answer was lost" and "never arrived" are different failures. Conditions,
    all optional and all required to hold: ``mti``, ``processing_code``, ``card``, ``terminal``,
    ``amount``; ``count`` limits the rule to the next N matching requests.
    """

    action: Literal["delay", "drop", "close", "respond", "garble", "duplicate"]
    process: bool
    mti: Text | None = Field(default=None, pattern=r"^\d{4}$")
    processing_code: Text | None = Field(default=None, pattern=r"^\d{6}$")
    card: Text | None = None
    terminal: Text | None = None
    amount: Amount | None = None
    count: int | None = Field(default=None, ge=1)
    ms: int | None = Field(default=None, ge=0, le=600_000)
    code: Code | None = None

    @model_validator(mode="after")
    def _needs(self) -> Fault:
        if self.action == "delay" and self.ms is None:
            raise ValueError("action delay needs ms")
        if self.action == "respond" and self.code is None:
            raise ValueError("action respond needs code")
        return self


class SignOnStep(_Model):
    """``sign_on`` (0800/001): sign on and take the working keys the 0810 carries (DE62).

    Keys that fail their check values are refused and the sign-on is tried again, up to three
    times in all, as the terminal does; ``expect: {keys: ...}`` says how that must end.
    """

    terminal: Text | None = None
    merchant: Text | None = None


class Step(_Model):
    """One step: exactly one verb plus ``id``, ``note``, ``say`` and ``expect``."""

    id: Text | None = None
    note: str | None = None
    say: str | None = None
    expect: Expect | None = None
    #: the wire profiles this step means something on (None: every profile)
    profiles: list[Profile] | None = Field(default=None, min_length=1)
    sale: CardPayment | None = None
    authorize: CardPayment | None = None
    complete: Complete | None = None
    refund: Refund | None = None
    void: Void | None = None
    reverse: Reverse | None = None
    settle: Settle | None = None
    echo: Echo | None = None
    advance: Advance | None = None
    check: Check | None = None
    approve_review: Review | None = None
    reject_review: Review | None = None
    send_raw: Annotated[SendRaw | None, BeforeValidator(_raw)] = None
    fault: Fault | None = None
    clear_faults: bool | None = None
    sign_on: SignOnStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_verbs(cls, data: Any) -> Any:
        # `- echo:` and `- echo: {}` mean the same: a verb with default parameters.
        if isinstance(data, dict):
            for verb in ("echo", "settle", "clear_faults", "sign_on"):
                if verb in data and data[verb] is None:
                    data = {**data, verb: True if verb == "clear_faults" else {}}
        return data

    @model_validator(mode="after")
    def _one_verb(self) -> Step:
        verbs = [v for v in VERBS if getattr(self, v) is not None]
        if not verbs:
            raise ValueError(f"a step needs one verb: {', '.join(VERBS)}")
        if len(verbs) > 1:
            raise ValueError(f"a step has one verb, this one has {', '.join(verbs)}")
        if self.expect and verbs[0] in ("advance", "check", "fault", "clear_faults"):
            raise ValueError(f"'{verbs[0]}' takes no expect (it is checked by itself)")
        return self

    @property
    def verb(self) -> str:
        """The step's verb."""
        return next(v for v in VERBS if getattr(self, v) is not None)

    @property
    def params(self) -> Any:
        """The verb's parameters."""
        return getattr(self, self.verb)

    @property
    def label(self) -> str:
        """How reports name the step: its id or its verb."""
        return f"{self.verb} {self.id}" if self.id else self.verb


class ClockSpec(_Model):
    """``clock``: the simulated clock's start instant (with a UTC offset)."""

    start: datetime

    @model_validator(mode="after")
    def _aware(self) -> ClockSpec:
        if self.start.tzinfo is None:
            raise ValueError("clock.start needs a UTC offset, e.g. 2026-11-27T09:00:00+08:00")
        return self


class _KeySpec(_Model):
    """A key given in a scenario: refused at load time unless it matches its check value."""

    def build(self) -> Key:
        """The key, checked against its KCV."""
        raise NotImplementedError

    @model_validator(mode="after")
    def _checks(self) -> _KeySpec:
        try:
            self.build()
        except SecurityError as exc:
            raise ValueError(str(exc)) from None
        return self


class TmkSpec(_KeySpec):
    """``terminal.tmk``: the terminal master key (test keys only), checked against its KCV."""

    key: Hex
    kcv: Hex
    algorithm: Literal["TDES-2", "TDES-3", "AES-128"] = "TDES-2"

    def build(self) -> Key:
        """The key, checked against its KCV."""
        return Key.from_hex(self.key, KeyAlgorithm(self.algorithm), kcv=self.kcv,
                            what="terminal.tmk")


class DukptSpec(_KeySpec):
    """``terminal.dukpt``: a TDES DUKPT initial key with its KCV and the initial KSN."""

    initial_key: Hex
    kcv: Hex
    ksn: Hex = Field(min_length=20, max_length=20)

    def build(self) -> Key:
        """The initial key, checked against its KCV."""
        return Key.from_hex(self.initial_key, KeyAlgorithm.TDES_2KEY, kcv=self.kcv,
                            what="terminal.dukpt.initial_key")


class TerminalSpec(_Model):
    """``terminal``: the default TID, MID and currency of the scenario's messages, and the keys
    of the scenario's terminal (``tmk`` for sign-on key exchange, or ``dukpt``)."""

    tid: Text | None = None
    mid: Text | None = None
    currency: str | None = None
    profile: Profile = "iso87-ascii"
    tmk: TmkSpec | None = None
    dukpt: DukptSpec | None = None


class Scenario(_Model):
    """One runnable scenario (after ``vars``/``cases``/``repeat`` expansion)."""

    name: str = Field(min_length=1)
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    seed: int | None = None
    clock: ClockSpec | None = None
    host: dict[str, Any] = Field(default_factory=dict)
    terminal: TerminalSpec = Field(default_factory=TerminalSpec)
    #: the wire profiles the whole scenario means something on (None: every profile)
    profiles: list[Profile] | None = Field(default=None, min_length=1)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    steps: list[Step] = Field(min_length=1)

    def on_profile(self, profile: str) -> Scenario:
        """This scenario with its terminal speaking ``profile`` (``run --profile``)."""
        return self.model_copy(update={"terminal": self.terminal.model_copy(
            update={"profile": profile})})


def references(step: Step) -> list[str]:
    """The step ids a step refers to (``original``, a review's ``refund``)."""
    p = step.params
    refs = [getattr(p, "original", None)]
    if step.verb in ("approve_review", "reject_review"):
        refs.append(p.refund)
    return [r for r in refs if r]
