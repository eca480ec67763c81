"""TLS certificate and key files: read, check, and say in one line what is wrong with them.

Host and terminal both read PEM files for TLS (server certificate and key, the CA that signs
the other side, a terminal's client certificate). The checks a person needs before any
connection is tried live here, on ``cryptography`` alone, so that both ends word them alike:

* the file exists and is readable;
* it holds at least one PEM certificate (or one PEM private key);
* the private key belongs to the first certificate of the chain.

Every problem is a :class:`TlsFileError` whose text names the file and what is wrong with it.
The Twisted objects are built from what these functions return (``host.tls``,
``terminal.tls``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

TlsKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey \
    | ed448.Ed448PrivateKey
"""The private key types a TLS certificate can be used with."""


class TlsFileError(ValueError):
    """A certificate or key file cannot be used; ``str()`` names the file and the problem."""


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate chain (leaf first) and the private key of its leaf.

    :ivar chain: the leaf certificate, then any intermediates from the same file.
    """

    chain: tuple[x509.Certificate, ...]
    key: TlsKey

    @property
    def leaf(self) -> x509.Certificate:
        """The certificate this key belongs to."""
        return self.chain[0]


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path}: cannot read the file "
                           f"({exc.strerror or type(exc).__name__})") from None


def load_certificates(path: str | Path, what: str) -> tuple[x509.Certificate, ...]:
    """Every PEM certificate in ``path`` (at least one); ``what`` names the file's role."""
    data = _read(path, what)
    try:
        certs = tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise TlsFileError(f"{what} {path}: no PEM certificate in the file "
                           "(expected -----BEGIN CERTIFICATE-----)") from None
    return certs


def load_private_key(path: str | Path, what: str) -> TlsKey:
    """The unencrypted PEM private key in ``path``."""
    data = _read(path, what)
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TlsFileError(f"{what} {path}: the key is encrypted; poslab reads unencrypted "
                           "PEM keys only") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TlsFileError(f"{what} {path}: not a PEM private key ({detail})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
                      | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise TlsFileError(f"{what} {path}: a {type(key).__name__} cannot be used for TLS")
    return key


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_certified_key(cert_path: str | Path, key_path: str | Path,
                       what: str) -> CertifiedKey:
    """The chain in ``cert_path`` and the key in ``key_path``, checked to belong together."""
    chain = load_certificates(cert_path, f"{what} certificate")
    key = load_private_key(key_path, f"{what} key")
    if _public_der(key.public_key()) != _public_der(chain[0].public_key()):
        raise TlsFileError(f"{what} key {key_path} does not belong to the certificate "
                           f"{cert_path} (their public keys differ)")
    return CertifiedKey(chain, key)


def certificate_names(cert: x509.Certificate) -> frozenset[str]:
    """The names a certificate gives its subject: every common name and every DNS name of
    its subject alternative names (how a terminal certificate names its TID)."""
    names = {str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(names)
    names.update(san.get_values_for_type(x509.DNSName))
    return frozenset(names)
