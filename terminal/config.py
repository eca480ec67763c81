"""Terminal settings: where the host is, who the terminal is, and its timeouts and policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from protocol.specs import DEFAULT_PROFILE
from terminal.tls import ClientTls


@dataclass(frozen=True)
class TerminalConfig:
    """Everything the terminal needs to run; built by the command line, replaced in tests.

    :ivar timeout_s_response: how long a request waits for its answer before it is reversed.
    :ivar reversal_repeats: how many 0401 repeats follow an unanswered 0400 (on CUP: how many
        times an unanswered 0400 or 0220 is sent again at once).
    :ivar echo_interval_s: link check period (0800/301); 0 disables it.
    :ivar supervisor_password: asked before refunds and voids when the matching flag is on.
    :ivar timezone: the merchant's IANA time zone; times on screens and slips are shown in it.
    :ivar lang: the language of screens and receipts, ``en`` or ``zh-CN`` (:mod:`terminal.i18n`).
    :ivar tls: TLS options for the host connection (:mod:`terminal.tls`); None: plain TCP.
    """

    host: str = "127.0.0.1"
    port: int = 8583
    profile: str = DEFAULT_PROFILE
    terminal_id: str = "TERM0001"
    merchant_id: str = "MERCHANT0000001"
    currency: str = "CNY"
    timezone: str = "Asia/Shanghai"
    data_dir: Path = field(default_factory=lambda: Path("data/terminal"))
    timeout_s_response: float = 15.0
    timeout_s_connect: float = 5.0
    reversal_repeats: int = 3
    echo_interval_s: float = 30.0
    supervisor_password: str = "0000"
    supervisor_for_refund: bool = True
    supervisor_for_void: bool = True
    lang: str = "en"
    tls: ClientTls | None = None

    @property
    def address(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"
