"""Bytes <-> field dicts through pyiso8583, with poslab's validation and error types.

A *field dict* maps ``"t"`` to the MTI and ``"2"`` ... ``"128"`` to field values as text
(binary fields as upper-case hex, BCD fields as their digits), and ``"h"`` to the message header
when the profile has one. Bitmaps are computed on encode and dropped on decode.

:class:`Codec` binds a :class:`~protocol.specs.WireProfile`: it encodes a message body,
behind the profile's TPDU if it has one, and decodes a frame payload back. The length header is
:mod:`protocol.framing`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import iso8583

from protocol.errors import DecodeError, EncodeError, ValidationError
from protocol.specs import DEFAULT_PROFILE, WireProfile, get_profile
from protocol.validate import validate_fields

TPDU_LEN = 5  # the TPDU of the built-in profiles; a profile's own is ``profile.tpdu.size``


@dataclass(frozen=True)
class Tpdu:
    """Transport protocol data unit: ID byte, destination and source addresses (hex text)."""

    raw: bytes

    @property
    def reply(self) -> Tpdu:
        """The TPDU of a response: destination and source swapped."""
        return Tpdu(self.raw[:1] + self.raw[3:5] + self.raw[1:3])

    def __str__(self) -> str:
        return self.raw.hex().upper()


class Codec:
    """Encode and decode message bodies for one wire profile.

    >>> codec = Codec("iso87-ascii")
    >>> body = codec.encode({"t": "0800", "11": "000001", "70": "301"})
    >>> codec.decode(body)[1]["70"]
    '301'
    """

    def __init__(self, profile: WireProfile | str = DEFAULT_PROFILE) -> None:
        self.profile = get_profile(profile) if isinstance(profile, str) else profile
        self._spec = self.profile.spec()
        self._table = self.profile.table
        self._tpdu = self.profile.tpdu
        self._header = self.profile.message_header
        # Decoded dicts keep "h" only when the profile has a message header.
        self._dropped = ("p", "1") if self._header is not None else ("p", "1", "h")

    def encode(self, fields: Mapping[str, str], tpdu: Tpdu | None = None) -> bytes:
        """Validate and encode ``fields``; prefix the TPDU when the profile has one."""
        try:
            validate_fields(fields, self._table)
        except ValidationError as exc:
            raise EncodeError(exc.reason, field=exc.field, fields=fields) from None
        doc: dict[str, Any] = dict(fields)  # pyiso8583 mutates what it is given
        if self._header is not None:
            doc.setdefault("h", self._header.default)
        try:
            body, _ = iso8583.encode(doc, self._spec)
        except iso8583.EncodeError as exc:
            raise EncodeError(exc.msg, field=exc.field, fields=fields) from None
        if self._tpdu is not None:
            return (tpdu.raw if tpdu is not None else self._tpdu.default) + bytes(body)
        return bytes(body)

    def decode(self, payload: bytes) -> tuple[Tpdu | None, dict[str, str]]:
        """Decode a frame payload into (TPDU or None, validated field dict).

        Raises :class:`DecodeError` when the bytes are not a message, and
        :class:`ValidationError` (carrying the decoded fields) when a field's content is wrong.
        """
        tpdu = None
        body = payload
        if self._tpdu is not None:
            size = self._tpdu.size
            if len(payload) < size:
                raise DecodeError("frame shorter than its TPDU", field="tpdu", pos=len(payload))
            tpdu, body = Tpdu(payload[:size]), payload[size:]
        fields = self.decode_body(body)
        validate_fields(fields, self._table)
        return tpdu, fields

    def decode_body(self, body: bytes) -> dict[str, str]:
        """Decode without content validation (used to answer format errors)."""
        try:
            decoded, _ = iso8583.decode(body, self._spec)
        except iso8583.DecodeError as exc:
            raise DecodeError(exc.msg, field=exc.field, pos=exc.pos) from None
        except (KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError) as exc:
            # pyiso8583 raises a bare KeyError for a bitmap bit outside the spec, and
            # codec errors for bytes that are not ASCII.
            raise DecodeError(f"undecodable message ({type(exc).__name__})") from None
        return {k: str(v) for k, v in decoded.items() if k not in self._dropped}
