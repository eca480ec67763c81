"""The duplicate-detection key of a request: what makes two messages the same transmission.

``MTI class | TID | STAN | when``, where *when* is, in this order:

* ``DE7`` (transmission date and time) when the terminal sends it;
* ``B`` + the batch number (DE60) on messages that carry one (0500, 0320);
* ``D`` + the host's business date (``YYYY-MM-DD``) of the request's merchant.

Only values the terminal sent, or the business date every copy of one transmission shares,
go into the key: never a time the host filled in. Terminals that send no DE7 (China UnionPay
terminals among them) therefore get their retransmissions recognised: a terminal does not
reuse a STAN within a business day, so (TID, STAN, business date) names one transmission.
The MTI class is the first three digits, so a repeat (0201, 0401) shares its original's key.
Transaction rows keep the key, so a reversal's DE90 (MTI, STAN, DE7) can name its original.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date

#: MTIs whose DE60 is the terminal's batch number.
_BATCH_MTIS = frozenset({"0500", "0320"})
#: Longer batch numbers (DE60 is LLLVAR) go into the key as a digest.
_BATCH_MAX = 32


def request_key_of(mti: str, tid: str, stan: str, when: str) -> str:
    """The key from its parts (``when``: DE7, ``B<batch>`` or ``D<business date>``)."""
    return "|".join((mti[:3], tid, stan, when))


def request_key(fields: Mapping[str, str], business_date: date, batch: str | None = None) -> str:
    """The key of a request as the terminal sent it (before the host fills in any time);
    ``batch``: the batch the request names when its profile says so in every message (CUP
    60.2: a CUP duplicate is the same MID, TID, trace and batch)."""
    mti = fields.get("t", "")
    when = fields.get("7")
    if not when:
        if batch is None:
            batch = fields.get("60") if mti in _BATCH_MTIS else None
        if batch and len(batch) > _BATCH_MAX:  # keep every key within the key column
            batch = "#" + hashlib.sha256(batch.encode()).hexdigest()[:32]
        when = f"B{batch}" if batch else f"D{business_date.isoformat()}"
    return request_key_of(mti, fields.get("41", ""), fields.get("11", ""), when)
