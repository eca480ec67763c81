"""The CUP engine's exchanges as the typed :class:`~terminal.session.Exchanged` events that
``poslab-terminal --record`` hears (the recorder reads typed messages, whatever the profile).

A financial step is told by the generic request the session journalled for the same draft
(:attr:`terminal.session.Pending.request`: card, entry mode, original, reason) and the answer's
DE39, DE44, DE37 and DE15; a sign-on and a settlement by their CUP fields read as the host reads
them (:func:`protocol.cup_messages.parse_cup_request`). PINs, keys and MACs are never part of
an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from protocol.cup_messages import parse_cup_request
from protocol.errors import ProtocolError
from protocol.messages import (
    AnyResponse,
    FinancialResponse,
    Message,
    NetworkResponse,
    ReconciliationResponse,
    response_mti,
)
from protocol.specs import WireProfile
from terminal.session import Exchanged

Fields = Mapping[str, str]


def typed_answer(request: Fields, answer: Fields | None) -> AnyResponse | None:
    """What a recording needs of the answer to ``request``: its code, rule, RRN and business
    date, as the typed response of its kind; None without an answer."""
    if answer is None:
        return None
    mti, code, stan = request.get("t", ""), answer.get("39", ""), request.get("11", "")
    tid, mid = answer.get("41", ""), answer.get("42", "")
    if mti not in ("0800", "0820", "0500"):
        return FinancialResponse(
            mti_value=response_mti(mti), response_code=code, rule=answer.get("44"),
            business_date=answer.get("15"), stan=stan, terminal_id=tid, merchant_id=mid,
            processing_code=answer.get("3", request.get("3", "")), rrn=answer.get("37"))
    kind = ReconciliationResponse if mti == "0500" else NetworkResponse
    return kind(mti_value=response_mti(mti), response_code=code, rule=answer.get("44"),
                business_date=answer.get("15"), stan=stan, terminal_id=tid, merchant_id=mid)


def management_event(request: Fields, answer: Fields | None, at: datetime,
                     profile: WireProfile, *, settled: bool = False, uploaded: int = 0
                     ) -> Exchanged | None:
    """The event of a sign-on, sign-off or settlement; None when the request does not read
    as one (nothing to record)."""
    try:
        _txn, typed = parse_cup_request(request, profile)
    except ProtocolError:
        return None
    return Exchanged(typed, typed_answer(request, answer), at, settled=settled,
                     uploaded=uploaded)


def financial_event(journalled: Message, request: Fields, answer: Fields | None, at: datetime,
                    card_name: str | None, reversal: str | None = None) -> Exchanged:
    """The event of a sale, void or refund: ``journalled`` is the generic request the session
    journalled for the same draft."""
    return Exchanged(journalled, typed_answer(request, answer), at, card_name,
                     reversal=reversal)
