"""The request path's per-request lookups, resolved once: the configured owner of a terminal,
a merchant's profile, and the texts of a business date."""

from __future__ import annotations

from datetime import date

from host.clock import ManualClock
from host.config import load_config
from host.pipeline.context import day_texts
from host.service import HostService
from tests.host.engine.conftest import VISA, Term, config_with, rc

MERCHANTS = [
    {"id": "MERCHANTAAAAAAA", "name": "A", "terminals": ["TERMA001", "TERMA002"]},
    {"id": "MERCHANTBBBBBBB", "name": "B", "terminals": ["TERMB001"]},
]


def test_the_owner_and_profile_lookups_agree_with_the_config(db: str,
                                                             clock: ManualClock) -> None:
    """Every listed terminal's owner and every merchant's profile are what the config itself
    answers; an unlisted terminal has none."""
    config = config_with(merchants=MERCHANTS)
    service = HostService(config, db, clock)
    try:
        pipeline = service.pipeline
        for tid in ("TERMA001", "TERMA002", "TERMB001", "NOTLISTD"):
            assert pipeline.terminal_owner(tid) is config.merchant_of_terminal(tid)
        assert pipeline.terminal_owner("NOTLISTD") is None
        for merchant in config.merchants:
            assert pipeline.merchant_profile(merchant.id) is merchant
    finally:
        service.close()


def test_a_terminal_answers_for_its_configured_merchant_only(db: str,
                                                            clock: ManualClock) -> None:
    """A listed terminal naming its own merchant is approved; naming another one it is
    answered 03 UNKNOWN_MERCHANT."""
    service = HostService(config_with(merchants=MERCHANTS), db, clock)
    try:
        own = Term(service, clock, tid="TERMB001", mid="MERCHANTBBBBBBB")
        assert rc(own.send(own.sale(1000, VISA))) == ("00", None)
        other = Term(service, clock, tid="TERMB001", mid="MERCHANTAAAAAAA")
        assert rc(other.send(other.sale(1000, VISA))) == ("03", "UNKNOWN_MERCHANT")
    finally:
        service.close()


def test_a_new_config_is_indexed_anew(db: str, clock: ManualClock) -> None:
    """A pipeline given another config looks terminals up in that one."""
    service = HostService(load_config(), db, clock)
    try:
        assert service.pipeline.terminal_owner("TERMB001") is None
        service.pipeline.config = config_with(merchants=MERCHANTS)
        owner = service.pipeline.terminal_owner("TERMB001")
        assert owner is not None and owner.id == "MERCHANTBBBBBBB"
    finally:
        service.close()


def test_day_texts_across_month_year_and_leap_day() -> None:
    """A business date's ISO text, the previous day's, and DE15 (MMDD), at the boundaries."""
    assert day_texts(date(2026, 1, 1)) == ("2026-01-01", "2025-12-31", "0101")
    assert day_texts(date(2028, 3, 1)) == ("2028-03-01", "2028-02-29", "0301")
    assert day_texts(date(2026, 3, 1)) == ("2026-03-01", "2026-02-28", "0301")
    assert day_texts(date(2026, 12, 9)) == ("2026-12-09", "2026-12-08", "1209")
