"""One shared JSON encoder for the stored, hashed and compared documents of the request path.

``json.dumps(obj, sort_keys=True)`` builds a new ``JSONEncoder`` on every call (only the
all-defaults call reuses one); the request path writes several such documents per message
(fingerprint, stored reply, audit event detail). :func:`dumps_sorted` is the same encoder
built once: its output is byte-identical to ``json.dumps(obj, sort_keys=True)``, which matters
for the fingerprints, since those written by earlier versions are compared with it.
:func:`stored_text` is for the documents only ever read back as JSON.
"""

from __future__ import annotations

import json

import msgspec

dumps_sorted = json.JSONEncoder(sort_keys=True).encode
"""``json.dumps(obj, sort_keys=True)``, without building an encoder per call."""

_STORED = msgspec.json.Encoder(order="sorted").encode


def stored_text(obj: object) -> str:
    """``obj`` as compact JSON with sorted keys, for documents that are stored and read back
    (a stored reply, an audit event's detail) but never compared as text with what an earlier
    version wrote: msgspec, several times faster than :func:`dumps_sorted`. The text is UTF-8
    (no ``\\u`` escapes); a MAC over it covers the stored text itself."""
    return _STORED(obj).decode()
