"""The framed Twisted protocol shared by host and terminal.

:class:`FramedProtocol` feeds received bytes to a :class:`~protocol.framing.Deframer` and calls
:meth:`~FramedProtocol.frameReceived` once per complete frame; a framing error calls
:meth:`~FramedProtocol.framingError`, which by default drops the connection. It imports no
reactor, so importing it never installs one
(docs/design-notes.md, "One loop, one reactor").
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.protocol import Protocol

from protocol.errors import FramingError
from protocol.framing import DEFAULT_MAX_FRAME_BYTES, Deframer, frame
from protocol.headers import LengthHeader


class FramedProtocol(Protocol):
    """Length-prefixed frames over a stream transport.

    :ivar length_header: a :class:`~protocol.headers.LengthHeader` or its name (``"2b"``,
        ``"4a"``); set before the connection is made.
    :ivar max_frame_bytes: frames announced larger than this close the connection.
    """

    length_header: LengthHeader | str = "2b"
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    _deframer: Deframer | None = None

    def connectionMade(self) -> None:  # noqa: N802 - Twisted naming
        """Start a fresh deframer for this connection."""
        self._deframer = Deframer(self.length_header, self.max_frame_bytes)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        """Cut ``data`` into frames and hand each to :meth:`frameReceived`."""
        if self._deframer is None:
            self._deframer = Deframer(self.length_header, self.max_frame_bytes)
        try:
            frames = self._deframer.feed(data)
        except FramingError as exc:
            # Frames complete before the bad header count, as they would have had the bytes
            # arrived in smaller chunks; then the connection goes.
            self._deliver(exc.frames)
            self.framingError(exc)
            return
        self._deliver(frames)

    def _deliver(self, frames: Sequence[bytes]) -> None:
        for payload in frames:
            if self.transport is None or getattr(self.transport, "disconnecting", False):
                return
            self.frameReceived(payload)

    @property
    def frame_in_progress(self) -> bool:
        """True while part of a frame is buffered (the host's per-frame deadline runs)."""
        return self._deframer is not None and self._deframer.in_progress

    def sendFrame(self, payload: bytes) -> None:  # noqa: N802
        """Write one frame."""
        assert self.transport is not None
        self.transport.write(frame(payload, self.length_header))  # type: ignore[call-arg,misc]

    def frameReceived(self, payload: bytes) -> None:  # noqa: N802
        """Override: one complete frame payload arrived."""
        raise NotImplementedError

    def framingError(self, error: FramingError) -> None:  # noqa: N802
        """The stream is corrupt: drop the connection."""
        if self.transport is not None:
            self.transport.abortConnection()
