"""The terminal's test card deck: shipped data, read from ``terminal/data/cards.toml``.

Each card knows how it is presented: a swipe sends track 2 (DE35), a chip insert, a tap or a
manual entry send the PAN and expiry (DE2/DE14); the entry mode (DE22) says which.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from protocol.codes import EntryMode
from protocol.masking import Pan, Track2
from protocol.messages import CardData

DECK_FILE = "cards.toml"

# The service code 101 (international, normal authorisation) and a zero discretionary part
# make a plausible track 2; no real card data is involved.
_SERVICE_CODE = "101"


class DeckError(ValueError):
    """The card deck file is missing or malformed; the message says where and what."""


@dataclass(frozen=True)
class Card:
    """One test card: a name for people, the PAN, expiry (YYMM) and the host's documented outcome.

    ``repr`` and ``str`` show the PAN masked.
    """

    name: str
    pan: Pan
    expiry: str
    outcome: str
    #: the PIN the host's catalogue holds for a card that asks for one (what a tester types);
    #: None: the card is used without a PIN.
    pin: str | None = field(default=None, repr=False)

    @property
    def needs_pin(self) -> bool:
        """True when the terminal asks the cardholder for a PIN."""
        return self.pin is not None

    @property
    def masked(self) -> str:
        """The PAN as screens show it."""
        return self.pan.masked

    def present(self, mode: EntryMode) -> CardData:
        """The card data a reader produces for this card in ``mode``."""
        if mode is EntryMode.SWIPE:
            track = f"{self.pan.digits}={self.expiry}{_SERVICE_CODE}0000000000"
            return CardData(entry_mode=mode, track2=Track2(track))
        return CardData(entry_mode=mode, pan=self.pan, expiry=self.expiry)


def load_deck(path: Path | None = None) -> list[Card]:
    """Read the deck (the shipped one by default); raise :class:`DeckError` on bad data."""
    where = str(path) if path else f"terminal/data/{DECK_FILE}"
    try:
        text = (path.read_text(encoding="utf-8") if path else
                resources.files("terminal").joinpath("data", DECK_FILE).read_text("utf-8"))
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeckError(f"cannot read card deck {where}: {exc}") from None
    cards: list[Card] = []
    for i, row in enumerate(doc.get("card", []), start=1):
        try:
            pan = Pan(str(row["pan"]))
            expiry = str(row["expiry"])
            if len(expiry) != 4 or not expiry.isdigit():
                raise ValueError("expiry must be YYMM")
            pin = row.get("pin")
            if pin is not None and not (isinstance(pin, str) and pin.isdigit()
                                        and 4 <= len(pin) <= 12):
                raise ValueError("pin must be 4 to 12 digits in quotes")
            cards.append(Card(str(row["name"]), pan, expiry, str(row.get("outcome", "")),
                              pin))
        except (KeyError, ValueError) as exc:
            raise DeckError(f"{where}: card #{i} is invalid ({exc})") from None
    if not cards:
        raise DeckError(f"{where}: the deck has no [[card]] entries")
    return cards
