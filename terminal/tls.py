"""TLS for the client side: a terminal (or a scenario run) connecting to a host on TLS.

:class:`ClientTls` is what a person gives on the command line: the CA that signs the host's
certificate (default: the system's trust store) and, for mutual TLS, the terminal's certificate
and key. :meth:`ClientTls.endpoint` wraps a TCP client endpoint in TLS for Twisted clients
(:class:`terminal.link.Link`, the scenario runner's admin client); :meth:`ClientTls.ssl_context`
is the same for the standard library (blocking admin calls). The host's certificate must name
the address connected to (a DNS name, or an IP address SAN for ``127.0.0.1``).

Files are read and checked when the options are made (:meth:`ClientTls.check`), so a wrong path
is one line at start, never a failed handshake later.
"""

from __future__ import annotations

import ssl as stdlib_ssl
from dataclasses import dataclass
from typing import Any

from protocol.tls_files import CertifiedKey, TlsFileError, load_certificates, load_certified_key


class ClientTlsError(ValueError):
    """The TLS options cannot be used; ``str()`` names the option, the file and the problem."""


@dataclass(frozen=True)
class ClientTls:
    """TLS options of a client.

    :ivar ca_file: PEM certificate(s) of the CA that signs the host's certificate; None trusts
        the system's CAs.
    :ivar cert_file: the client's PEM certificate, for hosts that require one (mutual TLS).
    :ivar key_file: the unencrypted PEM key of ``cert_file``.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def check(self) -> None:
        """Read every file named; raise :class:`ClientTlsError` with what is wrong."""
        self._material()

    def _material(self) -> tuple[tuple[Any, ...], CertifiedKey | None]:
        if (self.cert_file is None) != (self.key_file is None):
            raise ClientTlsError("--tls-cert and --tls-key go together: give both or neither")
        try:
            authorities = (load_certificates(self.ca_file, "--tls-ca")
                           if self.ca_file else ())
            pair = (load_certified_key(self.cert_file, self.key_file, "--tls client")
                    if self.cert_file and self.key_file else None)
        except TlsFileError as exc:
            raise ClientTlsError(str(exc)) from None
        return authorities, pair

    def options(self, hostname: str) -> Any:
        """Twisted client TLS options that verify the host is ``hostname``."""
        from OpenSSL import crypto
        from twisted.internet import ssl as twisted_ssl

        ssl: Any = twisted_ssl  # its helpers are untyped
        authorities, pair = self._material()
        trust = (ssl.trustRootFromCertificates(
            [ssl.Certificate(crypto.X509.from_cryptography(c)) for c in authorities])
            if authorities else ssl.platformTrust())
        client = _ClientCertificate(pair.leaf, _Held(pair.key)) if pair is not None else None
        return ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client)

    def endpoint(self, reactor: Any, host: str, port: int, timeout: float) -> Any:
        """A Twisted client endpoint to ``host:port`` through TLS."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS

        tcp: Any = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        return wrapClientTLS(self.options(host), tcp)

    def ssl_context(self) -> stdlib_ssl.SSLContext:
        """The same options for the standard library (``urllib``, sockets)."""
        self._material()  # the one-line errors, before the ssl module's own
        context = stdlib_ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class _Held:
    original: Any


@dataclass(frozen=True)
class _ClientCertificate:
    """What ``optionsForClientTLS`` reads of its ``clientCertificate`` (``.original`` and
    ``.privateKey.original``), holding cryptography objects: Twisted's own PrivateCertificate
    holds pyOpenSSL X509 and PKey, which pyOpenSSL now warns are deprecated when it loads
    them into a TLS context."""

    original: Any
    privateKey: _Held  # noqa: N815 - the attribute name Twisted reads


def client_tls(ca_file: str | None, cert_file: str | None, key_file: str | None,
               enabled: bool = False) -> ClientTls | None:
    """The options of the ``--tls*`` flags: None (plain TCP) unless one is given."""
    if not (enabled or ca_file or cert_file or key_file):
        return None
    tls = ClientTls(ca_file, cert_file, key_file)
    tls.check()
    return tls
