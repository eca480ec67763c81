"""TLS and mutual TLS on the host's ports, and the terminal certificate that must name its TID.

:func:`server_options` turns a ``[tls.iso]`` / ``[tls.admin]`` section into Twisted's
``CertificateOptions`` (the files are read and checked by :mod:`protocol.tls_files`, so a
missing file, a file without PEM or a key of another certificate is one :class:`TlsSetupError`
line). :func:`check` does the same for the whole config without building anything, so
``poslab-host`` refuses a bad file before it opens the database.

:class:`TlsServerFactory` wraps a plain factory: it keeps the wrapped factory's right to refuse
a connection (``buildProtocol`` returning None, the connection caps) and logs a handshake that
failed -- most often a client without the certificate mutual TLS requires -- as
``tls_handshake_failed`` with the peer and OpenSSL's reason.

:class:`TidBinding` is the ``[tls.iso] tid_in_certificate`` check the ISO 8583 server asks
before it hands a request to the service: DE41 must be the client certificate's common name or
one of its DNS subject alternative names. A request that breaks it is answered 58 with
``CERT_TID_MISMATCH`` in DE44 and books nothing; the connection stays open so the terminal
shows the answer instead of reversing and retrying into the same wall.
"""

from __future__ import annotations

from typing import Any, cast
from weakref import WeakKeyDictionary

from OpenSSL import crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IAddress
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

from host.logs import MessageLog
from host.pipeline.replies import plain_reply
from protocol.codes import RuleId
from protocol.tls_files import (
    TlsFileError,
    certificate_names,
    load_certificates,
    load_certified_key,
)


class TlsSetupError(Exception):
    """A TLS section cannot be used; ``str()`` is one line naming the file and the problem."""


def server_options(section: Any, port_name: str) -> ssl.CertificateOptions | None:
    """Twisted TLS options for one listening port, or None when the port is plain TCP.

    ``section`` is a :class:`host.config.TlsListenerSection`; ``port_name`` says which port in
    errors (``"[tls.iso]"``).
    """
    if section is None or not getattr(section, "enabled", False):
        return None
    try:
        pair = load_certified_key(section.cert_file, section.key_file,
                                  f"{port_name} server")
        authorities = (load_certificates(section.client_ca_file, f"{port_name} client CA")
                       if section.client_ca_file else ())
    except TlsFileError as exc:
        raise TlsSetupError(str(exc)) from None
    # pyOpenSSL takes the certificate and key as cryptography objects (its own X509 and PKey
    # are deprecated there); its certificate store still wants X509 for the client CAs.
    return ssl.CertificateOptions(
        privateKey=cast(Any, pair.key), certificate=cast(Any, pair.leaf),
        extraCertChain=cast(Any, list(pair.chain[1:])),
        verify=bool(authorities),
        caCerts=[crypto.X509.from_cryptography(c) for c in authorities] or None,
        requireCertificate=bool(section.require_client_cert),
    )


def check(config: Any) -> None:
    """Read and check every TLS file ``config`` names; raise :class:`TlsSetupError`."""
    tls = getattr(config, "tls", None)
    if tls is not None:
        server_options(tls.iso, "[tls.iso]")
        server_options(tls.admin, "[tls.admin]")


class _LoggedTlsProtocol(TLSMemoryBIOProtocol):
    """Logs a connection that ends before its TLS handshake completed."""

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802 - Twisted
        # Twisted keeps the handshake state and the TLS error in these attributes; read with
        # defaults so a change there only costs the log line, never the connection.
        # A front closes a connection the engine refused a slot (host.front) before its
        # handshake: that is a refusal, logged as such, as the one-process host never wraps it.
        if not getattr(self, "_handshakeDone", True) \
                and not getattr(self.wrappedProtocol, "refused", False):
            cause = getattr(self, "_reason", None) or reason
            factory: TlsServerFactory = self.factory  # type: ignore[assignment]
            transport: Any = self.transport
            peer = transport.getPeer() if transport is not None else None
            factory.log.event("tls_handshake_failed", port=factory.port_name,
                              peer=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}",
                              error=_reason_text(cause))
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class TlsServerFactory(TLSMemoryBIOFactory):
    """TLS around ``wrapped``; a connection ``wrapped`` refuses is closed, not wrapped."""

    protocol = _LoggedTlsProtocol

    def __init__(self, options: ssl.CertificateOptions, wrapped: Any, log: MessageLog,
                 port_name: str) -> None:
        super().__init__(cast(Any, options), False, wrapped)
        self.log = log
        self.port_name = port_name

    def buildProtocol(self, addr: IAddress | None) -> Any:  # noqa: N802 - Twisted naming
        """The TLS protocol around the wrapped factory's, or None when that one refuses."""
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return self.protocol(self, inner)  # type: ignore[no-untyped-call]


def _reason_text(reason: Any) -> str:
    value = getattr(reason, "value", reason)
    text = str(value).strip() if value is not None else ""
    return text.splitlines()[0] if text else type(value).__name__


class TidBinding:
    """``[tls.iso] tid_in_certificate``: a request's DE41 must be named by the connection's
    client certificate; :meth:`refusal` returns the 58 reply for one that is not."""

    def __init__(self, log: MessageLog) -> None:
        self.log = log
        self._names: WeakKeyDictionary[Any, frozenset[str]] = WeakKeyDictionary()

    def names(self, conn: Any) -> frozenset[str]:
        """The names of ``conn``'s client certificate (empty without one), read once."""
        found = self._names.get(conn)
        if found is None:
            transport = getattr(conn, "transport", None)
            peer = transport.getPeerCertificate() if transport is not None else None
            found = certificate_names(peer.to_cryptography()) if peer is not None else frozenset()
            self._names[conn] = found
        return found

    def refusal(self, conn: Any, fields: dict[str, str]) -> Any:
        """None when the certificate names DE41; else the 58 ``CERT_TID_MISMATCH`` reply."""
        tid = fields.get("41", "").rstrip()
        names = self.names(conn)
        if tid and tid in names:
            return None
        self.log.event("tls_tid_mismatch", conn=getattr(conn, "conn_id", None),
                       mti=fields.get("t", ""), stan=fields.get("11", ""), tid=tid,
                       certificate_names=sorted(names) or None)
        return plain_reply(fields, RuleId.CERT_TID_MISMATCH.code,
                           RuleId.CERT_TID_MISMATCH.value)
