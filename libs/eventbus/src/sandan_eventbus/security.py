"""How a service's gRPC edge is secured, from settings: who issues the tokens it accepts, its TLS certificate,
and how it calls other services. One typed settings object per concern (pydantic-settings), failing fast with
the variable's name.

The variables and what they mean are in the root README's configuration table, generated from the field
descriptions below (scripts/config_table.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandan_eventbus.auth.client import ClientCredentials, TokenSource
from sandan_eventbus.auth.interceptor import AuthInterceptor
from sandan_eventbus.auth.tokens import Issuer, KeySet, TokenVerifier
from sandan_eventbus.config import ConfigError


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


class OidcSettings(BaseSettings):
    """Who issues the tokens every call must carry (OpenID Connect), and this process's own identity for its calls
    (client credentials), from SANDAN_OIDC_* variables."""

    model_config = SettingsConfigDict(env_prefix="SANDAN_OIDC_", extra="ignore")

    issuer: str = Field(min_length=1, description=(
        "the `iss` every accepted token names, e.g. `http://127.0.0.1:8180/realms/sandan` locally; any conforming "
        "OpenID Connect issuer"))
    audience: str = Field("sandan", description="the audience (`aud`) every accepted token must carry")
    jwks_url: str = Field("", description=(
        "where the issuer's signing keys are fetched (default: the `jwks_uri` of its discovery document); keys are "
        "cached and fetched again for an unknown `kid`, so they can rotate"))
    discovery_url: str = Field(default="", description=(
        "where this process reads the issuer's discovery document when the issuer's public address is not "
        "reachable from inside (default: <issuer>/.well-known/openid-configuration)"))
    token_url: str = Field("", description=(
        "the token endpoint for this process's own identity (default: Keycloak's, under the issuer); set it with "
        "the discovery and JWKS URLs to reach the issuer at a back-channel address, as deploy/ does"))
    ca_file: str = Field("", description="a CA bundle (PEM) trusted for the issuer's HTTPS (default: the system's)")
    client_id: str = Field("", description=(
        "this process's own client, for the calls it makes to other services (notify's contact look-ups, the "
        "gateway's public board and Open311); services that call no one need none"))
    client_secret: str = Field(default="", repr=False, description="its secret (or the `_FILE`)")
    client_secret_file: str = Field("", description="the secret in a file (a mounted Secret)")

    def verify_tls(self) -> bool | str:
        return self.ca_file or True

    def verifier(self) -> TokenVerifier:
        issuer = Issuer(self.issuer.rstrip("/"), audience=self.audience, jwks_url=self.jwks_url,
                        discovery_url=self.discovery_url)
        return TokenVerifier(issuer, KeySet(issuer, verify_tls=self.verify_tls()))

    def guards(self) -> list[grpc.aio.ServerInterceptor]:
        return [AuthInterceptor(self.verifier())]

    def identity(self) -> TokenSource:
        """This service's own identity for the calls it makes (client credentials)."""
        secret = self.client_secret
        if self.client_secret_file:
            secret = _read(self.client_secret_file).decode().strip()
        if not self.client_id or not secret:
            raise ConfigError("SANDAN_OIDC_CLIENT_ID and SANDAN_OIDC_CLIENT_SECRET (or _FILE) are required for "
                              "a service that calls others")
        if self.token_url:
            return ClientCredentials(self.token_url, self.client_id, secret, verify_tls=self.verify_tls())
        return ClientCredentials.for_issuer(self.issuer, self.client_id, secret, verify_tls=self.verify_tls())


class GrpcTlsSettings(BaseSettings):
    """How the gRPC edge is secured: the server's certificate, optional mutual TLS, and the CA for calling other
    services, from SANDAN_GRPC_* variables."""

    model_config = SettingsConfigDict(env_prefix="SANDAN_GRPC_", extra="ignore")

    tls_cert_file: str = Field("", description=(
        "the gRPC server's certificate chain (PEM); with the key, required unless `SANDAN_GRPC_PLAINTEXT=allow`"))
    tls_key_file: str = Field("", description="its private key (PEM)")
    tls_client_ca_file: str = Field("", description=(
        "optional mutual TLS: callers must present a certificate signed by this CA; a caller (notify, the gateway) "
        "presents its own certificate and key from the two settings above"))
    tls_ca_file: str = Field("", description=(
        "for calls to other services (notify, the gateway) and the shipped health probe: the CA their "
        "certificates are signed by; required for calls unless plaintext is allowed"))
    plaintext: str = Field("", description=(
        "`allow`: plaintext gRPC without a certificate, for a local run; anything else is refused at start"),
        json_schema_extra={"env_type": "`allow` or empty"})

    @model_validator(mode="after")
    def _consistent(self) -> GrpcTlsSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("SANDAN_GRPC_TLS_CERT_FILE and SANDAN_GRPC_TLS_KEY_FILE go together")
        if self.plaintext not in ("", "allow"):
            raise ValueError("SANDAN_GRPC_PLAINTEXT must be 'allow' or empty")
        return self

    @property
    def plaintext_allowed(self) -> bool:
        return self.plaintext == "allow"

    def bind(self, server: grpc.aio.Server, address: str) -> int:
        """Listen on `address`: over TLS when a certificate is configured, in plaintext only when allowed."""
        if self.tls_cert_file:
            client_ca = _read(self.tls_client_ca_file) if self.tls_client_ca_file else None
            credentials = grpc.ssl_server_credentials(
                [(_read(self.tls_key_file), _read(self.tls_cert_file))], root_certificates=client_ca,
                require_client_auth=client_ca is not None)
            return server.add_secure_port(address, credentials)
        if not self.plaintext_allowed:
            raise ConfigError("no TLS certificate (SANDAN_GRPC_TLS_CERT_FILE, SANDAN_GRPC_TLS_KEY_FILE): set them, "
                              "or SANDAN_GRPC_PLAINTEXT=allow for a local run")
        return server.add_insecure_port(address)

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """Credentials for calling other services over TLS (None: plaintext, where allowed)."""
        if self.tls_ca_file:
            cert = _read(self.tls_cert_file) if self.tls_cert_file else None
            key = _read(self.tls_key_file) if self.tls_key_file else None
            return grpc.ssl_channel_credentials(_read(self.tls_ca_file), key, cert)
        if not self.plaintext_allowed:
            raise ConfigError("no CA for calling services over TLS (SANDAN_GRPC_TLS_CA_FILE): set it, "
                              "or SANDAN_GRPC_PLAINTEXT=allow for a local run")
        return None


def load(cls: type[Any]) -> Any:
    """Settings from the environment, or ConfigError naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors())
        raise ConfigError(problems) from None
