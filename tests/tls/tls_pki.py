"""A throw-away certificate authority for the TLS tests (imported by their conftest).

Nothing here is committed key material: :func:`make_pki` generates an EC P-256 CA, a server
certificate for ``localhost`` / ``127.0.0.1`` and one client certificate per terminal id named
in its common name, and writes them as PEM files into ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """The CA file, the host's certificate, and a factory of terminal certificates."""

    dir: Path
    ca: Path
    server: Issued
    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey

    def client(self, name: str, *, dns: tuple[str, ...] = ()) -> Issued:
        """A client certificate with common name ``name`` (and DNS SANs ``dns``)."""
        return _issue(self.dir, f"client-{name}", name, self.ca_cert, self.ca_key,
                      dns=dns, client=True)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _issue(where: Path, stem: str, cn: str, ca_cert: x509.Certificate,
           ca_key: ec.EllipticCurvePrivateKey, *, dns: tuple[str, ...] = (),
           ips: tuple[str, ...] = (), client: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client \
        else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    issued = Issued(where / f"{stem}.pem", where / f"{stem}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(issued.key, key)
    return issued


def make_pki(where: Path) -> Pki:
    """A new CA, a host certificate for localhost and 127.0.0.1, written under ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    ca_cert = (x509.CertificateBuilder().subject_name(_name("poslab test CA"))
               .issuer_name(_name("poslab test CA")).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                            crl_sign=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False,
                                            decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    ca = where / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    server = _issue(where, "host", "localhost", ca_cert, ca_key, dns=("localhost",),
                    ips=("127.0.0.1",))
    return Pki(where, ca, server, ca_cert, ca_key)
