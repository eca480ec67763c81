"""The terminal's shipped data: the card deck matches the host's catalogue; bad decks and
journals are reported with the file and the problem."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from terminal.cards import DeckError, load_deck
from terminal.journal import Journal, JournalError

HOST_DEFAULTS = Path(__file__).parents[2] / "host" / "data" / "default_config.toml"


def test_deck_matches_host_catalogue() -> None:
    """Every deck card is in the host's default catalogue with the same PAN, expiry and name,
    in the same order, and the other way round."""
    host = tomllib.loads(HOST_DEFAULTS.read_text(encoding="utf-8"))["cards"]
    deck = load_deck()
    assert [(c.pan.digits, c.expiry, c.name) for c in deck] == [
        (h["pan"], h["expiry"], h["name"]) for h in host]


def test_deck_pans_pass_luhn() -> None:
    """Every deck PAN has a valid check digit (the host rejects the others with 14)."""
    assert all(card.pan.luhn_ok() for card in load_deck())


def test_bad_deck_names_file_and_card(tmp_path: Path) -> None:
    """A deck entry without an expiry is reported with the file and the card's position."""
    bad = tmp_path / "cards.toml"
    bad.write_text('[[card]]\nname = "x"\npan = "4111111111111111"\n', encoding="utf-8")
    with pytest.raises(DeckError, match=r"cards.toml: card #1 is invalid"):
        load_deck(bad)


def test_corrupt_journal_is_a_clear_error(tmp_path: Path) -> None:
    """A journal that is not JSON is refused with its path and advice, not a traceback."""
    (tmp_path / "journal.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(JournalError, match=r"journal.json is unreadable.*Move it away"):
        Journal(tmp_path)


def test_deck_pins_are_the_catalogue_pins() -> None:
    """A deck card that asks for a PIN documents the PIN the host's catalogue holds for it."""
    host = {h["pan"]: h.get("pin") for h in
            tomllib.loads(HOST_DEFAULTS.read_text(encoding="utf-8"))["cards"]}
    asking = [c for c in load_deck() if c.needs_pin]
    assert asking and all(c.pin == host[c.pan.digits] for c in asking)
