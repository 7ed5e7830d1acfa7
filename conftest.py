"""Fixtures shared by every test folder: where the real PostgreSQL and Kafka are.

Addresses come from the environment (CI and deploy/local start real servers and export them);
otherwise testcontainers starts them, for machines with Docker. If neither works the test FAILS,
unless the developer asked for the unit subset on purpose with SANDAN_UNIT_ONLY=1 (then it skips).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _unavailable(what: str, why: Exception | str) -> None:
    message = f"{what} is not available ({why}); set its address in the environment or run Docker"
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = os.environ.get("SANDAN_TEST_POSTGRES_URL", "").strip()
    if url:
        yield url
        return
    try:
        from testcontainers.community.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", username="sandan", password="sandan", dbname="sandan")
        container.start()
    except Exception as exc:  # no Docker engine
        _unavailable("PostgreSQL", exc)
        return
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
        yield f"postgresql://sandan:sandan@{host}:{port}/sandan"
    finally:
        container.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if bootstrap:
        yield bootstrap
        return
    try:
        from testcontainers.community.kafka import KafkaContainer

        container = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
        container.start()
    except Exception as exc:  # no Docker engine
        _unavailable("Kafka", exc)
        return
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test (the URL carries `?schema=`), dropped afterwards."""
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres_url}?schema={schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def oidc_issuer() -> str:
    """The real identity provider's issuer URL (Keycloak from deploy/local/keycloak.sh, or any OIDC issuer with
    sandan's realm). There is no testcontainers fallback: scripts/test.sh starts it."""
    issuer = os.environ.get("SANDAN_TEST_OIDC_ISSUER", "").strip()
    if not issuer:
        _unavailable("Keycloak", "SANDAN_TEST_OIDC_ISSUER is not set (bash deploy/local/keycloak.sh start)")
    return issuer


@pytest.fixture(scope="session")
def keycloak(oidc_issuer: str) -> Iterator[object]:
    """The realm's admin API: create people with roles and places, and sign them in."""
    from sandan_eventbus.auth.keycloak import KeycloakAdmin

    admin = KeycloakAdmin(oidc_issuer)
    try:
        admin.http.get(oidc_issuer + "/.well-known/openid-configuration").raise_for_status()
    except Exception as exc:
        _unavailable("Keycloak", exc)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def local_issuer() -> Iterator[object]:
    """A local OIDC issuer for unit tests (real RS256 tokens, real JWKS over HTTP): `local_issuer.guards()` for a
    test server, `local_issuer.metadata("sub", ["member"], member_id="m-1")` for a call."""
    from sandan_eventbus.auth.devissuer import LocalIssuer

    issuer = LocalIssuer()
    yield issuer
    issuer.close()
