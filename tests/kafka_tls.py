"""A private Kafka broker that asks what the Kubernetes listener asks: TLS, SCRAM-SHA-512 and ACLs.

deploy/local/kafka.sh in its opt-in SASL_SSL mode, on free ports of its own and with a throwaway CA made here;
the shared broker is never touched. ACLs are enforced (KAFKA_AUTHORIZER=1): `USER`, the services' stand-in, is a
super user; any other user may do only what the test grants it. The `secure_broker` fixture (tests/conftest.py)
starts one per test module.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandan_eventbus.kafka import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deploy" / "local" / "kafka.sh"
USER = "sandan-test"


def free_ports() -> tuple[int, int]:
    """Two consecutive free ports below Linux's ephemeral range (see ARCHITECTURE.md, "Ports")."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(12000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port, port + 1
    raise RuntimeError("no free ports")


def write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(directory: Path, name: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return write_pem(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)), cert, key


def make_server_cert(directory: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path = write_pem(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM))
    key_path = write_pem(directory / "server.key", key.private_bytes(serialization.Encoding.PEM,
                                                                     serialization.PrivateFormat.PKCS8,
                                                                     serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass(frozen=True)
class SecureBroker:
    bootstrap: str
    ca_file: Path
    other_ca_file: Path  # a CA that did not sign the broker's certificate
    password_file: Path  # USER's
    log: Path

    def settings(self, **overrides: object) -> KafkaSettings:
        """The services' settings, as USER (a super user)."""
        fields = {"bootstrap_servers": self.bootstrap, "security_protocol": "SASL_SSL", "sasl_username": USER,
                  "sasl_password_file": self.password_file, "ssl_ca_file": self.ca_file, **overrides}
        return KafkaSettings(**fields)  # type: ignore[arg-type]


def _script(env: dict[str, str], command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), command], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@contextmanager
def running_secure_broker(work: Path) -> Iterator[SecureBroker]:
    """Start a private SASL_SSL broker with ACLs enforced, its state under `work`; stop it afterwards."""
    ca_file, ca, ca_key = make_ca(work, "test-ca")
    other_ca_file, _, _ = make_ca(work, "other-ca")
    cert_file, key_file = make_server_cert(work, ca, ca_key)
    password = secrets.token_urlsafe(18)
    password_file = write_pem(work / "password", password.encode() + b"\n")
    port, controller_port = free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env.update(KAFKA_SASL_SSL="1", KAFKA_AUTHORIZER="1", KAFKA_SUPER_USERS=USER, KAFKA_PORT=str(port),
               KAFKA_CONTROLLER_PORT=str(controller_port), KAFKA_STATE_DIR=str(work / "state"),
               KAFKA_BROKER_CERT_FILE=str(cert_file), KAFKA_BROKER_KEY_FILE=str(key_file),
               KAFKA_BROKER_CA_FILE=str(ca_file), KAFKA_SCRAM_USERS=f"{USER}={password}", KAFKA_HEAP="384m",
               KAFKA_WAIT_TIMEOUT="180")
    started = _script(env, "start", timeout=400)
    try:
        assert started.returncode == 0, f"private SASL_SSL broker did not start:\n{started.stderr[-4000:]}"
        config = (work / "state" / "server.properties").read_text()
        assert f"listeners=SASL_SSL://127.0.0.1:{port}," in config and "PLAINTEXT://" not in config
        assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in config
        yield SecureBroker(f"127.0.0.1:{port}", ca_file, other_ca_file, password_file, work / "state" / "kafka.log")
    finally:
        stopped = _script(env, "stop", timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]
