"""Where a scenario runs: a fresh in-process host, or a host that is already running.

:func:`start_local` gives each scenario its own host on the shared reactor -- real TCP on
127.0.0.1 port 0, a :class:`~host.clock.ManualClock` at the scenario's start instant, a fresh
SQLite ledger in a temporary directory and the scenario's ``host:`` overrides merged over the
shipped default config -- so scenarios are independent and deterministic.
:func:`remote` points at ``--host HOST:PORT`` (with ``--admin URL --token T`` when it is a
poslab host; without them ``advance``/``check``/review/fault steps are skipped).
"""

from __future__ import annotations

import copy
import io
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from scenarios.admin import AdminClient
from scenarios.schema import Scenario
from terminal.tls import ClientTls


class TargetError(Exception):
    """The scenario's host could not be set up; the message says why (bad override, ...)."""


@dataclass(frozen=True)
class DeckCard:
    """A named test card the scenario may refer to by name."""

    name: str
    pan: str
    expiry: str


@dataclass
class Target:
    """A host to talk to, and the defaults its configuration implies.

    :ivar admin: the admin API client, or None (with ``no_admin_reason``).
    :ivar cards: deck cards by lower-case name.
    :ivar tls: TLS options of the ISO 8583 connection (None: plain TCP).
    """

    iso_host: str
    iso_port: int
    tid: str
    mid: str
    currency: str
    admin: AdminClient | None = None
    no_admin_reason: str = ""
    cards: dict[str, DeckCard] = field(default_factory=dict)
    tls: ClientTls | None = None
    _runtime: Any = None
    _tmpdir: str | None = None

    async def close(self) -> None:
        """Stop the in-process host (if any) and remove its files."""
        try:
            if self._runtime is not None:
                await self._runtime.stop()
        finally:
            if self._tmpdir:
                shutil.rmtree(self._tmpdir, ignore_errors=True)


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``.

    Mappings merge key by key; any other value (lists included) replaces. A key ending in
    ``+`` appends its list to the base list (``merchants+: [...]`` adds a merchant).
    """
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if key.endswith("+") and isinstance(value, list):
            name = key[:-1]
            out[name] = list(out.get(name) or []) + copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def host_config(overrides: dict[str, Any]) -> Any:
    """The shipped default host config with ``overrides`` merged in, validated."""
    from host.config import HostConfig, load_config

    base = load_config(None).model_dump(mode="python", exclude_none=True)
    merged = merge_overrides(base, overrides)
    try:
        return HostConfig.model_validate(merged)
    except Exception as exc:  # pydantic ValidationError: reword with the dotted key
        errors = getattr(exc, "errors", None)
        if errors is None:
            raise TargetError(f"host: {exc}") from None
        lines = []
        for err in errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"host.{key}: {str(err['msg']).removeprefix('Value error, ')}")
        raise TargetError("; ".join(lines)) from None


def deck_from_config(config: Any) -> dict[str, DeckCard]:
    """Cards of the host config's catalogue and of the terminal's deck, by lower-case name."""
    cards: dict[str, DeckCard] = {}
    try:
        from terminal.cards import load_deck

        for card in load_deck():
            cards[card.name.lower()] = DeckCard(card.name, card.pan.digits, card.expiry)
    except Exception:  # the deck is optional: PANs always work
        pass
    for card in getattr(config, "cards", None) or []:
        name = getattr(card, "name", None)
        pan = getattr(card, "pan", None)
        if name and pan:
            cards[str(name).lower()] = DeckCard(str(name), str(pan),
                                                str(getattr(card, "expiry", None) or "3012"))
    return cards


def first_terminal(config: Any) -> tuple[str, str, str]:
    """(TID, MID, currency) of the config's first merchant and terminal."""
    if not getattr(config, "merchants", None):
        return "T0000001", "M00000000000001", "CNY"
    merchant = config.merchants[0]
    terminals = merchant.terminals
    tid = terminals[0] if isinstance(terminals[0], str) else terminals[0].id
    currencies = [c for c in merchant.currencies if c != "*"]
    currency = currencies[0] if currencies else config.host.currency
    return str(tid), str(merchant.id), str(currency)


async def start_local(scenario: Scenario, start: datetime, *, config: Any = None,
                      service_factory: Any = None) -> Target:
    """A fresh in-process host for ``scenario`` on the running reactor.

    ``config`` and ``service_factory`` replace the shipped config (with the scenario's
    overrides) and :class:`host.service.HostService` -- for tests of the runner itself.
    """
    from host.clock import ManualClock
    from host.runtime import HostRuntime, StartError

    if config is None:
        config = host_config(scenario.host)
    tmpdir = tempfile.mkdtemp(prefix="poslab-scenario-")
    runtime = HostRuntime(log=_quiet_log(), service_factory=service_factory)
    try:
        iso_port, admin_port = await runtime.start(
            config, str(Path(tmpdir) / "ledger.db"), ManualClock(start),
            profile=scenario.terminal.profile, admin_token="scenario")
    except StartError as exc:  # an unknown profile, a port: one line for the report
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise TargetError(str(exc)) from None
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    tid, mid, currency = first_terminal(config)
    return Target(
        "127.0.0.1", iso_port, scenario.terminal.tid or tid, scenario.terminal.mid or mid,
        scenario.terminal.currency or currency,
        admin=AdminClient(f"http://127.0.0.1:{admin_port}", runtime.admin_token),
        cards=deck_from_config(config), _runtime=runtime, _tmpdir=tmpdir)


class _Discard(io.StringIO):
    """A text stream that keeps nothing."""

    def write(self, text: str) -> int:
        return len(text)


def _quiet_log() -> Any:
    """A message log that writes nowhere (the runner keeps its own record of traffic)."""
    from host.logs import MessageLog

    return MessageLog(_Discard())


def remote(address: str, admin_url: str | None, token: str | None, scenario: Scenario,
           tid: str | None, mid: str | None, currency: str | None,
           tls: ClientTls | None = None) -> Target:
    """A target for an already running host at ``HOST:PORT`` (over TLS with ``tls``, which
    an ``https://`` admin URL uses too)."""
    host, _, port = address.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise TargetError(f"--host {address!r}: expected HOST:PORT") from None
    try:
        from host.config import load_config

        config: Any = load_config(None)
        d_tid, d_mid, d_cur = first_terminal(config)
    except Exception:
        config, d_tid, d_mid, d_cur = None, "T0000001", "M00000000000001", "CNY"
    return Target(
        host or "127.0.0.1", port_n,
        scenario.terminal.tid or tid or d_tid, scenario.terminal.mid or mid or d_mid,
        scenario.terminal.currency or currency or d_cur,
        admin=AdminClient(admin_url, token, tls) if admin_url else None,
        no_admin_reason="" if admin_url else "no admin API (run with --admin URL --token T)",
        cards=deck_from_config(config), tls=tls)
