"""The slot ``poslab-terminal --record`` plugs a recorder into, without knowing the recorder.

Writing what the terminal did as a scenario belongs to the scenario layer, which the terminal
must not import. The recorder registers itself under the ``poslab.terminal_recorder`` entry
point (``scenarios.recorder:PLUGIN``); :func:`load_recorder` finds it. A :class:`Recorder`
checks the path up front (before a host is started) and later opens a sink, which is called
with every :class:`~terminal.session.Exchanged` and keeps its last write failure in ``error``.
"""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from terminal.config import TerminalConfig
from terminal.session import Exchanged

ENTRY_POINT_GROUP = "poslab.terminal_recorder"


class RecordError(ValueError):
    """The recording file cannot be written; the text names the file and the problem."""


class RecordSink(Protocol):
    """Hears every exchange; :attr:`error` holds the last write failure (None: all written)."""

    error: str | None

    def __call__(self, event: Exchanged) -> None:
        """Record ``event``."""
        ...


class Recorder(Protocol):
    """Checks ``--record PATH`` and opens its sink."""

    def check(self, path: Path) -> None:
        """Raise :class:`RecordError` unless ``path`` can be written."""
        ...

    def open(self, path: Path, config: TerminalConfig, started: datetime) -> RecordSink:
        """A sink writing to ``path`` for a terminal with ``config``."""
        ...


def load_recorder() -> Recorder:
    """The installed recorder; :class:`RecordError` when none is installed."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        recorder: Recorder = entry.load()
        return recorder
    raise RecordError("--record needs the scenario recorder, which is not installed "
                      "(reinstall poslab)")
