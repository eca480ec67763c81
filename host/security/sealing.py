"""The one place a response is encoded: MAC'd when the request's MAC held (:func:`encode_response`).

Apart from :mod:`host.security.gate` so that a front process (:mod:`host.front.process`), which
encodes format errors but keeps no keys, does not load the key store and its database layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from protocol import Codec, Tpdu


class Sealer(Protocol):
    """What :func:`encode_response` asks of a service's ``security``
    (:class:`host.security.gate.HostSecurity`)."""

    def seal(self, fields: Mapping[str, str], encode: Callable[[Mapping[str, str]], bytes],
             body_offset: int) -> bytes:
        """``encode(fields)``, MAC'd when the request it answers had a good MAC."""


def encode_response(service: object, codec: Codec, fields: Mapping[str, str],
                    tpdu: Tpdu | None) -> bytes:
    """Encode a response; MAC'd when ``service`` has security and the request's MAC held."""
    security: Sealer | None = getattr(service, "security", None)
    if security is None:
        return codec.encode(fields, tpdu)
    profile = codec.profile
    offset = (profile.tpdu.size if profile.tpdu else 0) + (
        profile.message_header.size if profile.message_header else 0)
    return security.seal(fields, lambda out: codec.encode(out, tpdu), offset)
