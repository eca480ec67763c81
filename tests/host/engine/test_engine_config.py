"""Config loading: the shipped default, overrides, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from host.config import ConfigError, load_config


def test_default_config_has_demo_merchant_and_catalogue() -> None:
    """The shipped default has the demo merchant, its terminal and every card behaviour."""
    cfg = load_config()
    m = cfg.merchant("MERCHANT0000001")
    assert m is not None and m.terminals == ("TERM0001",) and m.currencies == ("*",)
    assert (m.currency, m.timezone, m.country) == ("CNY", "Asia/Shanghai", "CN")
    behaviours = {c.behaviour for c in cfg.cards}
    assert behaviours == {"approve", "decline", "insufficient_funds", "expired", "no_response"}
    assert {"4111111111111111", "5555555555554444"} <= {c.pan for c in cfg.cards}
    assert cfg.host.unknown_card == "approve"


def test_merchant_refund_override_is_merged(tmp_path: Path) -> None:
    """[merchants.refund] changes only the keys it names for that merchant."""
    path = tmp_path / "h.toml"
    path.write_text('[refund]\nwindow_days = 30\nmax_count = 5\n'
                    '[[merchants]]\nid = "M1"\nterminals = ["T1"]\n'
                    '[merchants.refund]\nwindow_days = 90\n'
                    '[[merchants]]\nid = "M2"\nterminals = ["T2"]\n')
    cfg = load_config(str(path))
    assert cfg.refund_policy("M1").window_days == 90
    assert cfg.refund_policy("M1").max_count == 5
    assert cfg.refund_policy("M2").window_days == 30


@pytest.mark.parametrize(("text", "where", "what"), [
    ("[host]\nno_such_key = 1\n", "host.no_such_key", "unknown key"),
    ('[[merchants]]\nid = "M"\ncurrencies = ["CNY", "XXX"]\n', "merchants[0].currencies",
     "unknown currency"),
    ('[[merchants]]\nid = "M"\ntimezone = "Mars/Base"\n', "merchants[0].timezone",
     "unknown time zone"),
    ("[refund]\nwindow_days = -1\n", "refund.window_days", "greater than or equal"),
    ('[host]\nsqlite_synchronous = "OFF"\n', "host.sqlite_synchronous", "'FULL' or 'NORMAL'"),
    ('[host]\nsqlite_wal_overlap = "sometimes"\n', "host.sqlite_wal_overlap", "boolean"),
    ('[settlement]\ncutoff = "25:00"\n', "settlement.cutoff", "pattern"),
    ('[[cards]]\npan = "4111111111111112"\n', "cards[0].pan", "Luhn"),
    ('[[cards]]\npan = "4000000000009995"\nbehaviour = "insufficient_funds"\n', "cards[0]",
     "balance_minor"),
    ('[[merchants]]\nid = "A"\nterminals = ["T"]\n[[merchants]]\nid = "B"\nterminals = ["T"]\n',
     "(top level)", "belongs to both"),
])
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, where: str, what: str) -> None:
    """Each bad value is one line naming the file, the dotted key and the problem."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ") and f": {where}" in message and what in message


def test_unreadable_and_broken_files(tmp_path: Path) -> None:
    """A missing file and invalid TOML are clear errors, not tracebacks."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[host\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(str(broken))


def test_config_error_never_shows_a_full_pan(tmp_path: Path) -> None:
    """A rejected card number is masked in the error text."""
    path = tmp_path / "bad.toml"
    path.write_text('[[cards]]\npan = "4111111111111111"\nbehaviour = "sometimes"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert "4111111111111111" not in str(err.value)
