"""The one exception tree of the wire layer.

::

    ProtocolError                 anything wrong with bytes on the wire
    ├── FramingError              the length header or the frame boundary is wrong: close the link
    ├── DecodeError               the frame is not an ISO 8583 message under the profile's spec
    └── ValidationError           it decodes, but a field breaks the spec or is missing
        └── EncodeError           a message we were asked to encode breaks the spec

Every error carries the field number and byte position when known. Messages never contain a
full PAN, track data or a PIN block: constructors pass the text through :func:`scrub`, so a
value echoed by a lower layer is masked before anyone can log it.

Business declines (refund exceeds the sale, card mismatch...) are not exceptions: the host
returns them as values with a response code.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.masking import scrub


class ProtocolError(Exception):
    """Base of every wire-level failure.

    :ivar field: the data element the problem was found in (``"2"``, ``"t"`` for the MTI,
        ``"p"`` for the bitmap), or ``None``.
    :ivar pos: the byte offset in the frame where decoding stopped, or ``None``.
    :ivar reason: the masked, human readable explanation.
    """

    def __init__(self, reason: str, *, field: str | None = None, pos: int | None = None) -> None:
        self.reason = scrub(reason)
        self.field = field
        self.pos = pos
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.field is not None:
            where.append(f"field {self.field}")
        if self.pos is not None:
            where.append(f"byte {self.pos}")
        return f"{self.reason} ({', '.join(where)})" if where else self.reason


class FramingError(ProtocolError):
    """The stream cannot be cut into frames: zero or oversized length, or a bad ASCII header.

    :ivar frames: complete frames that preceded the bad header in the same ``feed()`` call, so
        what is delivered does not depend on how the bytes were chunked.
    """

    frames: tuple[bytes, ...] = ()


class DecodeError(ProtocolError):
    """The frame is not a message under the active spec (truncated, junk, unknown bitmap bit)."""


class ValidationError(ProtocolError):
    """The message decoded, but a field's content breaks the spec.

    :ivar fields: what was decoded, so a host can still answer ``MTI+10`` with response code
        30 when the MTI, STAN and terminal id are readable.
    """

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        pos: int | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason, field=field, pos=pos)
        self.fields: dict[str, str] = dict(fields or {})


class EncodeError(ValidationError):
    """We were asked to put something on the wire that the spec does not allow."""
