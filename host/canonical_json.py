"""One shared JSON encoder for the stored, hashed and compared documents of the request path.

``json.dumps(obj, sort_keys=True)`` builds a new ``JSONEncoder`` on every call (only the
all-defaults call reuses one); the request path writes several such documents per message
(fingerprint, stored reply, audit event detail). :func:`dumps_sorted` is the same encoder
built once: its output is byte-identical to ``json.dumps(obj, sort_keys=True)``, which matters
because fingerprints and stored replies written by earlier versions are compared with it.
"""

from __future__ import annotations

import json

dumps_sorted = json.JSONEncoder(sort_keys=True).encode
"""``json.dumps(obj, sort_keys=True)``, without building an encoder per call."""
