"""A stand-in for one end of a front's pipe in the in-process front tests."""

from __future__ import annotations

from host.front.link import Deframer, LinkMessage


class LinkPipe:
    """What the other end writes to the pipe, decoded: the engine's writes to a front's
    stdin (``writeToChild``) or a front's writes to its stdout (``write``)."""

    def __init__(self) -> None:
        self.messages: list[LinkMessage] = []
        self._deframer = Deframer(self.messages.append)

    def writeToChild(self, fd: int, data: bytes) -> None:  # noqa: N802 - Twisted naming
        """The engine writes to a front (Twisted's process transport)."""
        self._deframer.feed(data)

    def write(self, data: bytes) -> None:
        """A front writes to the engine (its standard output)."""
        self._deframer.feed(data)

    def take(self) -> list[LinkMessage]:
        """The messages written since the last take."""
        taken, self.messages[:] = list(self.messages), []
        return taken
