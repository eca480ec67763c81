"""The host's configuration: a TOML file validated on load, with a shipped default.

:func:`load_config` reads a TOML file (or the shipped ``host/data/default_config.toml`` when no
path is given) into a :class:`HostConfig`. Every table forbids unknown keys, and every problem
is raised as one :class:`ConfigError` whose text names the file, the dotted key and what is
wrong, e.g. ``host.toml: merchants[0].currencies[1]: unknown currency 'XXX'``. The host must
not start on a bad config, so callers print ``str(error)`` and exit.

Layout (every table optional; without ``[[merchants]]`` the demo merchant ``MERCHANT0000001``
with terminal ``TERM0001`` is used)::

    [host]        currency, admin_token, rrn_prefix, card_hash_key, unknown_card,
                  sqlite_synchronous, chain_key_file
    [[merchants]] id, name, currencies (["*"] = any), currency, timezone, country, subdivision,
                  mdr_percent, fixed_fee_minor, cutoff, funding_days, terminals, partition, and
                  an optional
                  [merchants.refund]
                  table that overrides keys of [refund] for that merchant only
    [refund]      refund policy (see :class:`RefundPolicy`)
    [void]        void policy
    [reversal]    reversal policy
    [settlement]  cutoff "HH:MM" (business-day cut-over), funding_days; a merchant may
                  override both with its own ``cutoff`` and ``funding_days``
    [notifications] file (JSON-lines copy), webhook_url, max_attempts, backoff_s, timeout_s
    [limits]      protection limits: frames, timers, connections (total, per peer), requests in
                  flight per connection, the longest simulated clock move
    [server]      front_processes: the ISO sockets and codec in N processes of their own;
                  partition: the merchants this host serves when several share one database,
                  and the ledger chain it writes
    [text_limits] longest free text accepted: DE48 evidence and operator, review approver
    [tls.iso]     TLS on the ISO 8583 port: cert_file, key_file, client_ca_file,
                  require_client_cert, tid_in_certificate
    [tls.admin]   TLS on the admin API port: cert_file, key_file, client_ca_file,
                  require_client_cert
    [[cards]]     the test card catalogue (see :class:`CardEntry`)
    [[faults]]    fault injection rules active from start-up (see :class:`host.faults.FaultRule`)
    [security]    terminal master keys, MAC enforcement, DUKPT BDK, security response codes
                  (see :mod:`host.security_config`)
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from host.faults.rules import FaultRule
from host.security_config import SecuritySection
from protocol.cup_messages import DEFAULT_ACQUIRER_ID
from protocol.masking import luhn_ok, scrub
from protocol.money import currency as lookup_currency
from protocol.specs import get_profile

DEFAULT_CONFIG_NAME = "default_config.toml"


class ConfigError(Exception):
    """A configuration file could not be read or breaks the schema.

    ``str()`` is one line naming the file and every offending dotted key with what is wrong,
    separated by ``; ``.
    """


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_currency(code: str) -> str:
    try:
        return lookup_currency(code).alpha
    except ValueError:
        raise ValueError(f"unknown currency {code!r}") from None


class HostSection(_Strict):
    """``[host]``: identity of the host itself.

    :ivar currency: the currency assumed for figures that have none (reports, fees).
    :ivar admin_token: bearer token of the admin API (generated at start when absent).
    :ivar rrn_prefix: 0-4 characters put in front of every host-assigned RRN (DE37).
    :ivar card_hash_key: hex key of the keyed PAN hash; generated and kept in the database
        when absent.
    :ivar unknown_card: how a PAN outside the catalogue behaves (the catalogue's default card).
    :ivar sqlite_synchronous: SQLite's ``synchronous`` setting. ``FULL`` (the default) loses
        no acknowledged transaction even on power loss; ``NORMAL`` is faster and still loses
        nothing when the host process crashes, but may lose the last acknowledged commits when
        the machine loses power (docs/power-loss.md measures it). PostgreSQL ignores it.
    :ivar sqlite_wal_overlap: with ``FULL``, leave the WAL's fsync out of each group commit's
        COMMIT and run it in a thread of its own beside the next batch; replies still leave only
        after the fsync that covers them, so nothing acknowledged is less durable
        (docs/power-loss.md). It pays when the disk's fsync takes milliseconds and costs a
        little CPU per message when it does not (docs/performance.md); off by default.
        ``$POSLAB_WAL_OVERLAP=1`` turns it on too. PostgreSQL ignores it.
    :ivar chain_key_file: the file holding the ledger's chain key (docs/tamper-evidence.md);
        ``$POSLAB_CHAIN_KEY_FILE`` overrides it. Default: beside an SQLite database
        (``<file>.chain-key``), ``poslab-chain.key`` in the working directory for PostgreSQL.
        Generated (mode 0600) on first start when missing.
    :ivar profile: the wire profile the ISO 8583 port speaks (``cup`` for China UnionPay
        terminals); ``--profile`` overrides it; the default profile when absent.
    :ivar acquirer_id: the acquiring institution id (1-11 digits) CUP answers carry in DE32
        when the request sent none; the default ``00000000`` is a placeholder, no real
        institution's code.
    """

    currency: str = "CNY"
    admin_token: str | None = None
    rrn_prefix: str = Field(default="", max_length=4, pattern=r"^[A-Za-z0-9]*$")
    card_hash_key: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{32,128}$")
    unknown_card: Literal["approve", "decline"] = "approve"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    sqlite_wal_overlap: bool = False
    chain_key_file: str | None = Field(default=None, min_length=1)
    profile: str | None = None
    acquirer_id: str = Field(default=DEFAULT_ACQUIRER_ID, pattern=r"^[0-9]{1,11}$")

    _currency = field_validator("currency")(_check_currency)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, name: str | None) -> str | None:
        if name is not None:
            get_profile(name)  # ValueError naming the valid profiles
        return name


FeePolicy = Literal["keep_mdr", "refund_mdr_prorata", "per_refund_fee"]


class RefundPolicy(_Strict):
    """``[refund]``: refund rules (docs/design-notes.md), overridable per merchant.

    :ivar window_days: a refund must come within this many days of its sale (12 otherwise).
    :ivar partial_allowed: when false a refund must be for the whole remaining amount.
    :ivar max_count: at most this many effective refunds per sale (65), unbounded when absent.
    :ivar daily_amount_cap_minor: refunds per merchant per business day (61), none when absent.
    :ivar review_amount_minor: refunds above this are approved but held for review.
    :ivar second_approval_amount_minor: above this a review needs two distinct approvers.
    :ivar allow_unreferenced: accept refunds without an original RRN (DE37).
    :ivar require_same_pan: the refund card must be the sale's card (14).
    :ivar fee_policy: what happens to the sale's fee on refund (settlement uses it).
    :ivar per_refund_fee_minor: the fee charged per refund under ``per_refund_fee``.
    :ivar posting_days: [min, max] business days until a refund reaches the cardholder.
    """

    window_days: int = Field(default=30, ge=0)
    partial_allowed: bool = True
    max_count: int | None = Field(default=None, ge=1)
    daily_amount_cap_minor: int | None = Field(default=None, ge=0)
    review_amount_minor: int | None = Field(default=None, ge=0)
    second_approval_amount_minor: int | None = Field(default=None, ge=0)
    allow_unreferenced: bool = False
    require_same_pan: bool = True
    fee_policy: FeePolicy = "keep_mdr"
    per_refund_fee_minor: int = Field(default=0, ge=0)
    posting_days: tuple[int, int] = (3, 7)

    @model_validator(mode="after")
    def _ordered(self) -> RefundPolicy:
        lo, hi = self.posting_days
        if lo < 0 or hi < lo:
            raise ValueError("posting_days must be [min, max] with 0 <= min <= max")
        return self


class RefundOverride(_Strict):
    """``[merchants.refund]``: the keys of :class:`RefundPolicy` this merchant changes."""

    window_days: int | None = Field(default=None, ge=0)
    partial_allowed: bool | None = None
    max_count: int | None = Field(default=None, ge=1)
    daily_amount_cap_minor: int | None = Field(default=None, ge=0)
    review_amount_minor: int | None = Field(default=None, ge=0)
    second_approval_amount_minor: int | None = Field(default=None, ge=0)
    allow_unreferenced: bool | None = None
    require_same_pan: bool | None = None
    fee_policy: FeePolicy | None = None
    per_refund_fee_minor: int | None = Field(default=None, ge=0)
    posting_days: tuple[int, int] | None = None


class VoidPolicy(_Strict):
    """``[void]``: voids are full-amount, same-terminal, open-batch only (docs/design-notes.md)."""

    full_amount_only: bool = True
    same_terminal: bool = True


class ReversalPolicy(_Strict):
    """``[reversal]``: the answer to a reversal whose original the host never saw."""

    unknown_original_reply: Literal["00", "25"] = "00"


_CUTOFF = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: A partition's name: ``[server] partition`` and ``[[merchants]] partition``.
_PARTITION = r"^[a-z0-9][a-z0-9_-]{0,15}$"


class SettlementSection(_Strict):
    """``[settlement]``: business-day cut-over (local time of the merchant) and funding lag."""

    cutoff: str = Field(default="23:00", pattern=_CUTOFF)
    funding_days: int = Field(default=1, ge=0)


class NotificationsSection(_Strict):
    """``[notifications]``: where customer notifications go besides the outbox table.

    :ivar file: JSON-lines copy of every notification, appended right after the commit that
        created it (a relative path is relative to the host's working directory); none when
        absent.
    :ivar webhook_url: every notification is POSTed here as JSON (at least once: a receiver
        should de-duplicate by ``id``); none when absent.
    :ivar max_attempts: POSTs per notification before it is left undelivered (shown by
        ``GET /notifications``; retried again after a restart only if attempts remain).
    :ivar backoff_s: wait before the first retry; each further retry waits twice as long.
    :ivar timeout_s: one POST is given up (a failed attempt) without an answer this soon.
    """

    file: str | None = Field(default=None, min_length=1)
    webhook_url: str | None = None
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_s: float = Field(default=1.0, gt=0, le=3600)
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://"))
                                  or len(value.split("://", 1)[1]) == 0 or " " in value):
            raise ValueError(f"webhook_url {value!r} must be an http:// or https:// URL")
        return value

    def retry_delays(self) -> tuple[float, ...]:
        """The waits between attempts: ``backoff_s``, doubled each time."""
        return tuple(self.backoff_s * 2 ** i for i in range(self.max_attempts - 1))


class LimitsSection(_Strict):
    """``[limits]``: protection of the ISO 8583 listener and of the simulated clock.

    :ivar max_frame_bytes: a frame announced larger than this closes its connection.
    :ivar frame_deadline_s: a frame must be complete this long after its first byte.
    :ivar idle_timeout_s: a connection without a complete frame for this long is closed.
    :ivar first_frame_timeout_s: a new connection must complete its first frame this soon,
        so sockets that never send cannot hold the connection slots (the idle timeout still
        applies when it is the shorter).
    :ivar max_connections: open connections in all (over every front process too: the host
        process keeps the count, ``host.connection_caps``).
    :ivar max_connections_per_peer: open connections from one IP address, so that one peer
        cannot lock every other terminal out (no effect when not below max_connections);
        counted over every front process too.
    :ivar max_in_flight: requests of one connection with the service at a time; the host
        stops reading a connection that pipelines more until it has answered.
    :ivar max_clock_move_days: the longest move of the simulated clock in one admin command
        (``/clock/advance`` and ``/clock/set``); longer moves get 400.
    """

    max_frame_bytes: int = Field(default=8192, ge=64, le=65535)
    frame_deadline_s: float = Field(default=5, gt=0, allow_inf_nan=False)
    idle_timeout_s: float = Field(default=120, gt=0, allow_inf_nan=False)
    first_frame_timeout_s: float = Field(default=5, gt=0, allow_inf_nan=False)
    max_connections: int = Field(default=100, ge=1)
    max_connections_per_peer: int = Field(default=50, ge=1)
    max_in_flight: int = Field(default=8, ge=1, le=1024)
    max_clock_move_days: int = Field(default=366, ge=1, le=36600)


class ServerSection(_Strict):
    """``[server]``: how the host uses the machine's cores (docs/performance.md).

    :ivar front_processes: 0 (the default) runs everything in the host process. N > 0 starts
        N front processes that own the ISO 8583 sockets, decode, validate and answer, while the
        host process keeps the ledger (``host.front``). With ``[tls.iso]`` each front
        terminates TLS itself; ``[[faults]]`` rules work with fronts too: the host process
        matches them, the fronts deliver. The ``[limits]`` connection caps count every
        front's connections, and ``/metrics`` shows what the fronts count
        (docs/performance.md).
    :ivar partition: the merchants this host serves when several hosts share one database:
        those whose ``[[merchants]] partition`` is this name (without it, those without one).
        It also names the ledger chain the host writes (``host.ledger.chains``), so hosts of
        different partitions post without waiting for each other; None writes the chain
        ``main``.
    """

    front_processes: int = Field(default=0, ge=0, le=16)
    partition: str | None = Field(default=None, pattern=_PARTITION)


class TextLimitsSection(_Strict):
    """``[text_limits]``: the longest free text the host accepts, checked before anything is
    stored so SQLite and PostgreSQL answer alike (the columns are never the limit).

    :ivar evidence_max: characters of a refund's DE48 ``EV`` item (longer: 30, DE44 names it).
    :ivar operator_max: characters of a refund's or void's DE48 ``OP`` item (longer: 30).
    :ivar approver_max: characters of a review approver's name (longer: HTTP 400).

    Each may be lowered, never raised past the column that stores it.
    """

    evidence_max: int = Field(default=200, ge=1, le=200)
    operator_max: int = Field(default=40, ge=1, le=40)
    approver_max: int = Field(default=64, ge=1, le=64)


class TlsListenerSection(_Strict):
    """``[tls.admin]`` (and the common keys of ``[tls.iso]``): TLS on one listening port.

    The port speaks TLS when ``cert_file`` and ``key_file`` are set (PEM; the certificate file
    may carry intermediates after the server certificate). Relative paths are relative to the
    host's working directory; the files are read and checked at start.

    :ivar client_ca_file: PEM certificates of the CA(s) that sign client certificates; a
        client that presents a certificate not signed by them is refused in the handshake.
    :ivar require_client_cert: mutual TLS: a client without a valid certificate is refused in
        the handshake (needs ``client_ca_file``).
    """

    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)
    client_ca_file: str | None = Field(default=None, min_length=1)
    require_client_cert: bool = False

    @property
    def enabled(self) -> bool:
        """True when the port listens on TLS."""
        return self.cert_file is not None

    @model_validator(mode="after")
    def _complete(self) -> TlsListenerSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        if self.client_ca_file is not None and not self.enabled:
            raise ValueError("client_ca_file needs cert_file and key_file (TLS on the port)")
        if self.require_client_cert and self.client_ca_file is None:
            raise ValueError("require_client_cert needs client_ca_file, the CA that signs "
                             "the client certificates")
        return self


class IsoTlsSection(TlsListenerSection):
    """``[tls.iso]``: TLS on the ISO 8583 port.

    :ivar tid_in_certificate: every request's DE41 must be a name of the connection's client
        certificate (its common name or a DNS subject alternative name); any other request
        is answered 58 with ``CERT_TID_MISMATCH`` in DE44 and books nothing (needs
        ``client_ca_file``; set ``require_client_cert`` too, or a connection without a
        certificate gets 58 on every request).
    """

    tid_in_certificate: bool = False

    @model_validator(mode="after")
    def _tid_needs_ca(self) -> IsoTlsSection:
        if self.tid_in_certificate and self.client_ca_file is None:
            raise ValueError("tid_in_certificate needs client_ca_file (client certificates)")
        return self


class TlsSection(_Strict):
    """``[tls]``: TLS and mutual TLS on the ISO 8583 port (``[tls.iso]``) and on the admin
    API port (``[tls.admin]``); both plain TCP when absent."""

    iso: IsoTlsSection = IsoTlsSection()
    admin: TlsListenerSection = TlsListenerSection()


class MerchantConfig(_Strict):
    """``[[merchants]]``: a merchant, its terminals and its refund policy overrides.

    :ivar partition: the host that serves this merchant when several share one database: the
        one whose ``[server] partition`` has this name; without it, the host without one. A
        name no host is configured with is no error here (each host reads its own config).
    """

    id: str = Field(min_length=1, max_length=15, pattern=r"^[\x20-\x7e]+$")
    name: str = ""
    currencies: tuple[str, ...] = ("*",)
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    country: str = Field(default="CN", pattern=r"^[A-Z]{2}$")
    subdivision: str | None = None
    mdr_percent: Decimal = Field(default=Decimal("0.6"), ge=0, le=100)
    fixed_fee_minor: int = Field(default=0, ge=0)
    cutoff: str | None = Field(default=None, pattern=_CUTOFF)  # else [settlement] cutoff
    funding_days: int | None = Field(default=None, ge=0)  # else [settlement] funding_days
    terminals: tuple[str, ...] = ()
    partition: str | None = Field(default=None, pattern=_PARTITION)
    refund: RefundOverride = RefundOverride()

    _currency = field_validator("currency")(_check_currency)

    @field_validator("currencies")
    @classmethod
    def _currencies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('list at least one currency, or ["*"] for any')
        return tuple(c if c == "*" else _check_currency(c) for c in value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("terminals")
    @classmethod
    def _terminals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tid in value:
            if not 1 <= len(tid) <= 8 or not tid.isprintable():
                raise ValueError(f"terminal id {tid!r} must be 1-8 printable characters")
        return value

    def accepts(self, currency_code: str) -> bool:
        """True when this merchant takes payments in ``currency_code`` (alphabetic)."""
        return "*" in self.currencies or currency_code in self.currencies


CardBehaviour = Literal["approve", "decline", "insufficient_funds", "expired", "no_response"]


class CardEntry(_Strict):
    """``[[cards]]``: one test card and how the host's simulated issuer treats it.

    :ivar behaviour: ``approve``; ``decline`` (with ``decline_code``); ``insufficient_funds``
        (amounts above ``balance_minor`` get 51); ``expired`` (54); ``no_response`` (the host
        books nothing and sends nothing, so the terminal times out and reverses).
    :ivar pin: the card's test PIN: a PIN block in DE52 is checked against it
        (docs/keys-and-macs.md).
    :ivar pin_required: a purchase with this card and no PIN block is declined 55.
    """

    pan: str = Field(pattern=r"^[0-9]{13,19}$")
    expiry: str = Field(default="3012", pattern=r"^[0-9]{2}(0[1-9]|1[0-2])$")
    pin: str | None = Field(default=None, pattern=r"^[0-9]{4,12}$")
    pin_required: bool = False
    behaviour: CardBehaviour = "approve"
    decline_code: str = Field(default="05", pattern=r"^[0-9A-Z]{2}$")
    balance_minor: int | None = Field(default=None, ge=0)
    name: str = ""
    label: str = ""

    @field_validator("pan")
    @classmethod
    def _luhn(cls, value: str) -> str:
        if not luhn_ok(value):
            raise ValueError("card number fails the Luhn check")
        return value

    @model_validator(mode="after")
    def _balance(self) -> CardEntry:
        if self.behaviour == "insufficient_funds" and self.balance_minor is None:
            raise ValueError("an insufficient_funds card needs balance_minor")
        return self


class HostConfig(_Strict):
    """The whole validated configuration of one host."""

    host: HostSection = HostSection()
    merchants: tuple[MerchantConfig, ...] = Field(
        default=(MerchantConfig(id="MERCHANT0000001", name="poslab demo store",
                                terminals=("TERM0001",)),), min_length=1)
    refund: RefundPolicy = RefundPolicy()
    void: VoidPolicy = VoidPolicy()
    reversal: ReversalPolicy = ReversalPolicy()
    settlement: SettlementSection = SettlementSection()
    notifications: NotificationsSection = NotificationsSection()
    limits: LimitsSection = LimitsSection()
    server: ServerSection = ServerSection()
    text_limits: TextLimitsSection = TextLimitsSection()
    tls: TlsSection = TlsSection()
    cards: tuple[CardEntry, ...] = ()
    faults: tuple[FaultRule, ...] = ()  # [[faults]]: fault injection rules (host.faults.rules)
    security: SecuritySection = SecuritySection()  # keys, MAC, PIN (host.security_config)

    @model_validator(mode="after")
    def _unique(self) -> HostConfig:
        seen_mid: set[str] = set()
        seen_tid: dict[str, str] = {}
        for m in self.merchants:
            if m.id in seen_mid:
                raise ValueError(f"merchant id {m.id!r} appears twice")
            seen_mid.add(m.id)
            for tid in m.terminals:
                if tid in seen_tid:
                    raise ValueError(f"terminal {tid!r} belongs to both {seen_tid[tid]!r} "
                                     f"and {m.id!r}")
                seen_tid[tid] = m.id
        pans = [c.pan for c in self.cards]
        if len(set(pans)) != len(pans):
            raise ValueError("a card number appears twice in [[cards]]")
        return self

    @property
    def default_merchant(self) -> MerchantConfig:
        """The profile unknown merchants are enrolled with (the first merchant)."""
        return self.merchants[0]

    def merchant(self, merchant_id: str) -> MerchantConfig | None:
        """The configured merchant with this id, or None."""
        return next((m for m in self.merchants if m.id == merchant_id), None)

    def merchant_of_terminal(self, terminal_id: str) -> MerchantConfig | None:
        """The configured merchant owning this terminal, or None."""
        return next((m for m in self.merchants if terminal_id in m.terminals), None)

    @property
    def partition(self) -> str | None:
        """The partition this host serves (``[server] partition``); None: the merchants
        without one."""
        return getattr(self.server, "partition", None)

    def foreign_partition(self, merchant: MerchantConfig) -> str | None:
        """Why this host does not serve the listed ``merchant`` (its partition is another
        host's), as the decision log says it; None when it serves it."""
        mine = self.partition
        if merchant.partition == mine:
            return None
        theirs = f"partition {merchant.partition}" if merchant.partition else "no partition"
        served = f"partition {mine}" if mine else "the merchants without a partition"
        return f"merchant {merchant.id} belongs to {theirs}; this host serves {served}"

    def settles(self, merchant_id: str | None) -> bool:
        """True when this host runs the merchant's cut-offs, funding, refund postings and
        notifications: a listed merchant of its own partition, or a merchant the config does
        not list (enrolled in development mode) on the host without a partition, so that two
        hosts on one database never settle the same merchant."""
        listed = None if merchant_id is None else self.merchant(merchant_id)
        if listed is None:
            return self.partition is None
        return listed.partition == self.partition

    def refund_policy(self, merchant_id: str) -> RefundPolicy:
        """``[refund]`` with this merchant's ``[merchants.refund]`` overrides applied."""
        m = self.merchant(merchant_id)
        if m is None:
            return self.refund
        changes = m.refund.model_dump(exclude_unset=True)
        return self.refund.model_copy(update=changes) if changes else self.refund


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def parse_config(data: dict[str, Any], source: str) -> HostConfig:
    """Validate an already-parsed TOML document; ``source`` names it in errors."""
    try:
        return HostConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            lines.append(f"{source}: {_dotted(err['loc'])}: {scrub(msg)}")
        raise ConfigError("; ".join(lines)) from None


def default_config_text() -> str:
    """The shipped default configuration, as TOML text."""
    return resources.files("host").joinpath("data", DEFAULT_CONFIG_NAME).read_text("utf-8")


def load_config(path: str | None = None) -> HostConfig:
    """Load and validate a TOML config file, or the shipped default when ``path`` is None."""
    if path is None:
        source, text = f"<default {DEFAULT_CONFIG_NAME}>", default_config_text()
    else:
        source = path
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: the file is not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return parse_config(data, source)
