"""One browser tab's terminal: claim an id from the pool, run the terminal as that id.

When every id is taken, or the terminal cannot start (an unreadable journal in its folder),
the tab shows why instead of a terminal, and the server's output gets the same line when the
tab closes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from terminal.config import TerminalConfig
from terminal.tidpool import claim, describe

LOCK_FOLDER = "tid-locks"


def pool_full_message(tids: tuple[str, ...]) -> str:
    """What a tab says when no terminal id is free."""
    return (f"All terminal ids are in use: {describe(tids)}. Close another tab, or restart "
            "the server with a larger --tid-pool.")


class NoticeApp(App[None]):
    """A one-message screen for a tab that cannot have a terminal."""

    TITLE = "poslab terminal"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+q", "quit", "Quit")]
    CSS = "Static { margin: 2 4; padding: 1 2; border: heavy $error; }"

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        """The message and how to leave."""
        yield Static(f"{self.message}\n\nCtrl+Q ends this session; the page's Restart button "
                     "then tries again.", id="notice")


def show_notice(message: str) -> None:
    """Show ``message`` in the tab until its user closes it."""
    NoticeApp(message).run()


def run_session(config: TerminalConfig, tids: tuple[str, ...],
                run_terminal: Callable[[TerminalConfig], int],
                notify: Callable[[str], None] = show_notice) -> int:
    """Claim an id (locks under ``DATA-DIR/tid-locks``) and run the terminal as it, with the
    data folder ``DATA-DIR/<TID>``; 2 after ``notify`` showed why when the pool is exhausted."""
    held = claim(tids, config.data_dir / LOCK_FOLDER)
    if held is None:
        message = pool_full_message(tids)
        print(f"poslab-terminal: {message}", file=sys.stderr, flush=True)
        notify(message)
        return 2
    with held:
        return run_terminal(replace(config, terminal_id=held.tid,
                                    data_dir=config.data_dir / held.tid))
