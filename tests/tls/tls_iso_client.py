"""An ISO 8583 client for the TLS tests that owes nothing to poslab's codec or link.

The standard library's ``ssl`` over a blocking socket, a 2-byte length header, and pyiso8583's
own ``default`` spec (the 1987 layout the generic profile uses: DE52 and DE64 ``b 8``, DE53
fixed 16, DE62 LLLVAR) unless the test gives its own. :meth:`TlsIsoClient.send_raw` sends
bytes as given, so a test can seal a MAC over them and then change one.
"""

from __future__ import annotations

import socket
import ssl
import struct
from pathlib import Path
from types import TracebackType
from typing import Any

import iso8583
from iso8583.specs import default as PYISO_DEFAULT
from tls_pki import Issued


class TlsIsoClient:
    """One TLS connection to an ISO 8583 port, verifying the host against ``ca`` and showing
    ``client``'s certificate when given (mutual TLS)."""

    def __init__(self, port: int, ca: Path, client: Issued | None = None,
                 spec: dict[str, Any] | None = None) -> None:
        self.spec = PYISO_DEFAULT if spec is None else spec
        context = ssl.create_default_context(cafile=str(ca))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.reader = self.sock.makefile("rb")
        #: the bytes of the last answer (MTI to the end), for checking its MAC
        self.last_raw = b""

    def __enter__(self) -> TlsIsoClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.reader.close()
        self.sock.close()

    @staticmethod
    def encode(fields: dict[str, Any], spec: dict[str, Any] | None = None) -> bytes:
        """``fields`` as pyiso8583 encodes them with ``spec`` (no length header)."""
        body, _ = iso8583.encode(dict(fields), PYISO_DEFAULT if spec is None else spec)
        return bytes(body)

    def send_raw(self, raw: bytes) -> dict[str, Any]:
        """Send one encoded message; the decoded answer (its bytes in :attr:`last_raw`)."""
        self.sock.sendall(struct.pack("!H", len(raw)) + raw)
        size = struct.unpack("!H", self._read(2))[0]
        self.last_raw = self._read(size)
        answer, _ = iso8583.decode(self.last_raw, self.spec)
        return answer

    def exchange(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Encode ``fields``, send them, and return the decoded answer."""
        return self.send_raw(self.encode(fields, self.spec))

    def _read(self, n: int) -> bytes:
        data: bytes = self.reader.read(n)
        if len(data) < n:
            raise ConnectionError("host closed the connection")
        return data
