"""DE32 (acquiring institution) in the CUP host's answers: the ``[host] acquirer_id`` setting
(a placeholder by default), or the request's own DE32 echoed, in every answer whose CUP layout
has the field (0110, 0210, 0410, 0510, 0330, 0810, 0830) and not in the refund advice's 0230."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cup_terminal import UNIONPAY, CupTerminal, config_text, totals_text

from host.clock import ManualClock
from host.config import ConfigError, parse_config
from host.service import HostService
from protocol.cup import CUP_PROFILE

NOW = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
ACQUIRER = "48021234"


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[CupTerminal]:
    """TERM0001 signed on to a CUP host whose ``[host] acquirer_id`` is ACQUIRER."""
    text = f'[host]\nacquirer_id = "{ACQUIRER}"\n' + config_text()
    svc = HostService(parse_config(tomllib.loads(text), "<test>"), str(tmp_path / "host.db"),
                      ManualClock(NOW))
    assert svc.security is not None
    svc.security.use_profile(CUP_PROFILE)
    terminal = CupTerminal(svc)
    yield terminal
    svc.close()


def test_every_answer_with_de32_in_its_layout_carries_the_setting(
        configured: CupTerminal) -> None:
    """0810, 0110, 0210, 0410, 0510, 0330 and 0830 carry the configured id; the 0230 not."""
    term = configured
    answers = [term.sign_on(), term.preauth(500)]
    sale = term.sale(1000)
    answers += [sale, term.send({"t": "0400", "2": UNIONPAY, "3": "000000",
                                 "4": "000000001000", "11": sale["11"], "22": "022",
                                 "25": "00", "39": "98", "49": "156",
                                 "60": f"22{term.batch}000"})]
    refund = term.refund(term.sale(2000), 500)
    # Totals that do not balance: the batch stays open for the closing 0320.
    answers += [term.send({"t": "0500", "48": totals_text((1, 1), (0, 0)), "49": "156",
                           "60": f"00{term.batch}201", "63": "01 "}),
                term.send({"t": "0320", "48": "00", "60": f"00{term.batch}207"}),
                term.send({"t": "0820", "60": f"00{term.batch}002"})]
    assert [(a["t"], a["39"], a.get("32")) for a in answers] == [
        (mti, "00", ACQUIRER) for mti in ("0810", "0110", "0210", "0410", "0510", "0330",
                                          "0830")]
    assert (refund["t"], refund["39"], refund.get("32")) == ("0230", "00", None)


def test_a_refusal_carries_de32_too(configured: CupTerminal) -> None:
    """A sale refused before any handler (77: not signed on) still carries the setting."""
    answer = configured.sale(100)
    assert (answer["39"], answer.get("32")) == ("77", ACQUIRER)


def test_de32_the_terminal_sent_is_echoed(configured: CupTerminal) -> None:
    """A request with its own DE32 gets that one back, not the setting."""
    configured.sign_on()
    answer = configured.send({"t": "0200", "2": UNIONPAY, "3": "000000", "4": "000000000100",
                              "22": "022", "25": "00", "32": "01020000", "49": "156",
                              "60": f"22{configured.batch}000"})
    assert (answer["39"], answer["32"]) == ("00", "01020000")


def test_without_the_setting_de32_is_the_documented_placeholder(term: CupTerminal) -> None:
    """A host that configures no acquirer id answers DE32 00000000, on each backend."""
    assert term.sale(100)["32"] == "00000000"


def test_acquirer_id_must_be_up_to_eleven_digits() -> None:
    """Up to eleven digits are taken; a non-numeric, empty or longer ``[host] acquirer_id``
    is a config error naming the key."""
    assert parse_config({"host": {"acquirer_id": "12345678901"}},
                        "<test>").host.acquirer_id == "12345678901"
    for bad in ("ABC", "123456789012", ""):
        with pytest.raises(ConfigError, match=r"host\.acquirer_id"):
            parse_config({"host": {"acquirer_id": bad}}, "<test>")
