"""A cheap reader of a few fields of a response, so the generator spares its CPU for the socket.

Full decoding costs about 40 us a message with pyiso8583, which on a 2-core machine is CPU the
host under test does not get. The bench needs only the MTI and DE11 (to match the answer to
its request), DE39 and DE37, so it walks the bitmap and length prefixes of the profile's
compiled spec and slices those fields. Anything the walk
does not understand returns None and the caller falls back to :meth:`protocol.Codec.decode_body`.
"""

from __future__ import annotations

from typing import Any

from protocol import Codec


class FieldScanner:
    """Slice selected fields out of an encoded body (ASCII length prefixes only)."""

    def __init__(self, codec: Codec, wanted: tuple[str, ...] = ("t", "11", "37", "39")) -> None:
        spec = codec.profile.spec()
        self._mti = "t" in wanted
        self._wanted = {int(k) for k in wanted if k.isdigit()}
        self._last = max(self._wanted)
        # per field number: (len_type, max_len, is_binary); None when the layout is unusual
        self._layout: list[tuple[int, int, bool] | None] = [None] * 129
        self.usable = spec["h"]["max_len"] == 0 and spec["t"]["max_len"] == 4 \
            and spec["t"]["data_enc"] == "ascii" and spec["p"]["data_enc"] == "b"
        for key, entry in spec.items():
            if not key.isdigit():
                continue
            ok = entry["len_enc"] == "ascii" and entry["data_enc"] in ("ascii", "b") \
                and entry.get("len_count", "bytes") == "bytes"
            self._layout[int(key)] = (
                (entry["len_type"], entry["max_len"], entry["data_enc"] == "b") if ok else None)

    def scan(self, body: bytes) -> dict[str, str] | None:
        """The wanted fields present in ``body`` (text), or None when unsure."""
        if not self.usable or len(body) < 12:
            return None
        bitmap = int.from_bytes(body[4:12], "big")
        pos, nbits = 12, 64
        if bitmap >> 63 & 1:
            bitmap = bitmap << 64 | int.from_bytes(body[12:20], "big")
            pos, nbits = 20, 128
        out: dict[str, str] = {}
        try:
            if self._mti:
                out["t"] = body[:4].decode("ascii")
            for n in range(2, self._last + 1):
                if not bitmap >> (nbits - n) & 1:
                    continue
                layout: Any = self._layout[n]
                if layout is None:
                    return None
                len_type, max_len, binary = layout
                if len_type:
                    size = int(body[pos:pos + len_type])
                    pos += len_type
                else:
                    size = max_len
                if n in self._wanted:
                    raw = body[pos:pos + size]
                    out[str(n)] = raw.hex().upper() if binary else raw.decode("ascii")
                pos += size
        except (ValueError, UnicodeDecodeError):
            return None
        if pos > len(body):
            return None
        return out
