"""A throwaway CA for gRPC over TLS in tests: a service certificate issued for the names given (a service's name,
as deploy/ issues them), and a stranger CA that signed nothing here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandan_eventbus.security import GrpcTlsSettings


@dataclass(frozen=True)
class Pki:
    ca: Path
    stranger_ca: Path
    cert: Path
    key: Path

    def server(self) -> GrpcTlsSettings:
        """The service's own settings: its certificate and key."""
        return GrpcTlsSettings(tls_cert_file=str(self.cert), tls_key_file=str(self.key))


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _ca(name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def throwaway_pki(directory: Path, *names: str) -> Pki:
    """A CA, and a server certificate signed by it for the DNS `names` only (no address: a caller reaching it at
    127.0.0.1 must check it for one of the names)."""
    ca, ca_key = _ca("sandan throwaway CA")
    stranger, _ = _ca("stranger CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    pki = Pki(directory / "ca.pem", directory / "stranger-ca.pem", directory / "cert.pem", directory / "key.pem")
    pki.ca.write_bytes(ca.public_bytes(pem))
    pki.stranger_ca.write_bytes(stranger.public_bytes(pem))
    pki.cert.write_bytes(cert.public_bytes(pem))
    pki.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pki
