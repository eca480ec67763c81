"""The host's time stamp on answers (host.pipeline.replies.stamped)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from host.pipeline.replies import Reply, plain_reply, stamped

LOCAL = datetime(2026, 3, 7, 9, 5, 4)
REQUEST = {"t": "0200", "11": "000123", "41": "TERM0001", "42": "MERCHANT0000001",
           "7": "0307090504", "3": "000000", "4": "000000001500", "49": "978"}


@pytest.mark.parametrize("mti", ["0200", "0400", "0500", "0320", "0800"])
def test_stamp_sets_de12_de13_and_keeps_every_other_field(mti: str) -> None:
    """Every answer class gets the host's MMDD/hhmmss and is otherwise the same response."""
    reply = plain_reply({**REQUEST, "t": mti}, "00", None)
    assert reply.response is not None
    out = stamped(reply, LOCAL)
    assert out.response == dataclasses.replace(reply.response, host_date="0307",
                                               host_time="090504")
    assert type(out.response) is type(reply.response)
    fields = out.response.to_fields()
    assert (fields["13"], fields["12"]) == ("0307", "090504")
    assert {k: v for k, v in fields.items() if k not in ("12", "13")} == \
        {k: v for k, v in reply.response.to_fields().items() if k not in ("12", "13")}
    assert out.log is reply.log
    assert reply.response.host_date is None  # the original is left as it was


def test_stamp_leaves_a_reply_without_response_alone() -> None:
    """A deliberate silence stays a silence."""
    silent = Reply(None, {"note": "no_response"})
    assert stamped(silent, LOCAL) is silent


def test_stamped_response_is_still_frozen() -> None:
    """The stamped copy cannot be changed afterwards, like any message."""
    out = stamped(plain_reply(REQUEST, "00", None), LOCAL).response
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.host_date = "0101"  # type: ignore[misc, union-attr]
