"""Wrong PINs in a row per card, in the database so a restart does not forget a lock.

A card is locked when its wrong PINs in a row reach the limit; the request that reaches it
already gets "PIN tries exceeded". A locked card gets that answer for every PIN until a
correct PIN arrives on a later business day than the one it was locked on; a correct PIN on
an unlocked card clears the count.
"""

from __future__ import annotations

import enum

from sqlalchemy import Connection, insert, select, update

from host.security.tables import pin_tries


class PinOutcome(enum.Enum):
    """What one PIN attempt comes to once the card's history is counted."""

    ACCEPTED = "accepted"
    WRONG = "wrong"
    LOCKED = "locked"


def record_attempt(conn: Connection, pan_hash: str, business_date: str, correct: bool,
                   limit: int, now_ms: int) -> PinOutcome:
    """Count one attempt for the card ``pan_hash`` (in the caller's transaction)."""
    row = conn.execute(select(pin_tries).where(pin_tries.c.pan_hash == pan_hash)
                       .with_for_update()).first()
    wrong, locked_on = (row.wrong_in_row, row.locked_on) if row is not None else (0, None)
    if locked_on is not None and not (correct and business_date > locked_on):
        return PinOutcome.LOCKED
    if correct:
        outcome, wrong, locked_on = PinOutcome.ACCEPTED, 0, None
    else:
        wrong += 1
        outcome = PinOutcome.LOCKED if wrong >= limit else PinOutcome.WRONG
        locked_on = business_date if outcome is PinOutcome.LOCKED else None
    values = {"wrong_in_row": wrong, "locked_on": locked_on, "updated_ms": now_ms}
    if row is None:
        if correct:
            return outcome  # nothing to remember about a card that never had a wrong PIN
        conn.execute(insert(pin_tries).values(pan_hash=pan_hash, **values))
    elif (row.wrong_in_row, row.locked_on) != (wrong, locked_on):
        conn.execute(update(pin_tries).where(pin_tries.c.pan_hash == pan_hash).values(**values))
    return outcome
