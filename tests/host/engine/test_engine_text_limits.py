"""[text_limits]: the free-text limits come from the config, are checked before anything is
stored, and card numbers in free text never reach a row or a view."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text, update

from host.clock import ManualClock
from host.config import ConfigError
from host.service import HostService
from host.store import txn as txn_table

from .conftest import MC, Term, config_with, rc


def refund_with(term: Term, rrn: str, de48: str) -> dict[str, str]:
    """A refund of 1.00 of ``rrn`` carrying ``de48`` as sent."""
    fields = term.refund(100, rrn)
    fields["48"] = de48
    return fields


def test_lowered_limits_are_the_ones_enforced(make_service: Callable[..., HostService],
                                              clock: ManualClock) -> None:
    """With evidence_max 10 and operator_max 4, 11 and 5 characters get 30 naming the limit;
    10 and 4 are approved."""
    service = make_service(config_with(text_limits={"evidence_max": 10, "operator_max": 4}))
    term = Term(service, clock)
    rrn = term.approved_sale(5000)
    assert rc(term.send(refund_with(term, rrn, "EV011" + "e" * 11))) == \
        ("30", "48:EV@0 LEN 11>MAX 10")
    assert rc(term.send(refund_with(term, rrn, "RS006returnOP005abcde"))) == \
        ("30", "48:OP@11 LEN 5>MAX 4")
    assert rc(term.send(refund_with(term, rrn, "EV010" + "e" * 10 + "OP004abcd")))[0] == "00"


def test_limits_cannot_exceed_the_columns() -> None:
    """A limit above what the database column holds is a config error naming the key."""
    with pytest.raises(ConfigError, match=r"text_limits\.evidence_max"):
        config_with(text_limits={"evidence_max": 201})


def test_views_mask_card_numbers_stored_by_an_older_version(service: HostService,
                                                            term: Term) -> None:
    """A refund row whose evidence holds a full card number (written before masking on entry)
    is shown masked by the transaction views."""
    rrn = term.approved_sale(5000)
    reply = term.send(refund_with(term, rrn, "RS006returnEV008RMA-1234"))
    refund_rrn = getattr(reply.response, "rrn", None)
    with service.engine.begin() as conn:
        # that older version had no history triggers either
        conn.execute(text("DROP TRIGGER txn_fixed"))
        conn.execute(update(txn_table).where(txn_table.c.rrn == refund_rrn)
                     .values(evidence=f"card {MC}", operator=MC))
    shown = service.transaction(str(refund_rrn))
    assert shown is not None
    assert (shown["evidence"], shown["operator"]) == ("card 555555******4444",
                                                      "555555******4444")
