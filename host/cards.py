"""The simulated issuer: the test card catalogue and what it says to a purchase.

Pure: :func:`issuer_decision` looks the PAN up in the catalogue of the config (``[[cards]]``)
and returns an :class:`IssuerDecision`. PANs outside the catalogue behave as the catalogue's
default card (``[host] unknown_card``, approve by default). Also here: the keyed card hash the
host stores instead of a PAN (refund matching compares hashes, never PANs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from host.config import CardEntry, HostConfig
from host.ledger.keyed import keyed_mac
from protocol.codes import RuleId
from protocol.masking import Pan


@dataclass(frozen=True)
class IssuerDecision:
    """What the simulated issuer answers.

    :ivar approved: True to approve.
    :ivar respond: False for a silent issuer: the host books nothing and sends nothing.
    :ivar code: DE39 when declined.
    :ivar rule: DE44 rule id when declined.
    :ivar card: the catalogue entry, or None for the default card.
    """

    approved: bool
    respond: bool = True
    code: str = "00"
    rule: RuleId | None = None
    card: CardEntry | None = None


_RULE_BY_CODE = {"51": RuleId.INSUFFICIENT_FUNDS, "54": RuleId.EXPIRED_CARD,
                 "55": RuleId.INCORRECT_PIN}


def find_card(config: HostConfig, pan: Pan) -> CardEntry | None:
    """The catalogue entry for ``pan``, or None (the first, if the catalogue lists it twice)."""
    return _catalogue(config.cards).get(pan.digits)


# The catalogue indexed by PAN, for the config's card tuple (a frozen config keeps the same
# tuple): each request looks its card up two or three times.
_index: tuple[tuple[CardEntry, ...], dict[str, CardEntry]] = ((), {})


def _catalogue(cards: tuple[CardEntry, ...]) -> dict[str, CardEntry]:
    global _index
    known, by_pan = _index
    if known is not cards:
        by_pan = {}
        for card in cards:
            by_pan.setdefault(card.pan, card)
        _index = (cards, by_pan)
    return by_pan


def issuer_decision(config: HostConfig, pan: Pan, amount_minor: int) -> IssuerDecision:
    """Approve, decline or stay silent for a purchase or authorization of ``amount_minor``."""
    card = find_card(config, pan)
    behaviour = card.behaviour if card is not None else config.host.unknown_card
    if behaviour == "approve":
        return IssuerDecision(True, card=card)
    if behaviour == "no_response":
        return IssuerDecision(False, respond=False, code="", card=card)
    if behaviour == "expired":
        return IssuerDecision(False, code="54", rule=RuleId.EXPIRED_CARD, card=card)
    if behaviour == "insufficient_funds":
        balance = card.balance_minor if card is not None and card.balance_minor is not None else 0
        if amount_minor <= balance:
            return IssuerDecision(True, card=card)
        return IssuerDecision(False, code="51", rule=RuleId.INSUFFICIENT_FUNDS, card=card)
    code = card.decline_code if card is not None else "05"
    return IssuerDecision(False, code=code, rule=_RULE_BY_CODE.get(code, RuleId.CARD_DECLINED),
                          card=card)


def silent_card(config: HostConfig, pan: Pan) -> bool:
    """True for a ``no_response`` card: nothing is booked or sent for any request with it."""
    card = find_card(config, pan)
    return card is not None and card.behaviour == "no_response"


def card_hash(key: bytes, pan: Pan) -> str:
    """Keyed HMAC-SHA-256 of the PAN, hex: what the database keeps to match cards."""
    return _keyed(key)(pan.digits.encode("ascii"))


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> Callable[[bytes], str]:
    # The key's HMAC state is built once per key, not once per card (same digest).
    return keyed_mac(key, "hmac-sha256")
