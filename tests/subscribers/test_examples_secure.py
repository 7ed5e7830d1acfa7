"""The example subscribers connect the way an agency must: SASL_SSL, SCRAM-SHA-512, a read-only partner user.

Against the private broker of tests/kafka_tls.py (`secure_broker`: TLS with a throwaway CA, SCRAM, ACLs enforced
by KRaft's StandardAuthorizer; the shared broker is never touched), a partner user is made as Strimzi's User
Operator makes deploy/k8s/partners/partner-example.yaml: a SCRAM-SHA-512 credential, then exactly the ACLs the
KafkaUser lists (Read and Describe on each public topic, its own group prefix), through the Admin API. Each
example then runs with only the settings docs/subscribing.md gives an agency (bootstrap, SASL_SSL, user,
password, the CA as a PEM file), reads every public topic (its default), prints the published events with their
CloudEvents types and recognises the redelivery. The same user is refused, with an authorization error and not
a hang, when it writes to a public topic, reads a dead-letter topic or uses a group that is not its own.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from sandan_contracts import TOPICS
from sandan_contracts.events import DemandWithdrawn, OrderCancelled
from sandan_eventbus.kafka import create_topics
from tests.kafka_tls import SecureBroker
from tests.subscribers.support import REPO, Published, check, java_example, publish, python_example, run, succeeded

pytestmark = pytest.mark.kafka

PARTNER_USER = REPO / "deploy" / "k8s" / "partners" / "partner-example.yaml"
PUBLIC = [t.name for t in TOPICS.values() if t.dead_letter]  # the dead-letter topics are not public
EXAMPLES = ["python", "java"]


@dataclass(frozen=True)
class Partner:
    name: str
    connection: dict[str, str]  # the documented settings, as an agency sets them
    published: Published
    admin: dict[str, str]  # librdkafka settings of the broker's super user (for looking behind the scenes)


def _kafka_user() -> dict:
    [user] = [d for d in yaml.safe_load_all(PARTNER_USER.read_text()) if d and d.get("kind") == "KafkaUser"]
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["spec"]["authorization"]["type"] == "simple"
    return user


def _acl_bindings(user: dict) -> list[AclBinding]:
    """The KafkaUser's ACLs as Strimzi's User Operator writes them (host `*`, allow)."""
    name = user["metadata"]["name"]
    kinds = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    patterns = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}
    return [AclBinding(kinds[acl["resource"]["type"]], acl["resource"]["name"],
                       patterns[acl["resource"]["patternType"]], f"User:{name}", "*",
                       AclOperation[operation.upper()], AclPermissionType.ALLOW)
            for acl in user["spec"]["authorization"]["acls"] for operation in acl["operations"]]


def _create_partner(admin: AdminClient, name: str, password: str, acls: list[AclBinding]) -> None:
    upsert = UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          password.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)
    for future in admin.create_acls(acls).values():
        future.result(30)
    mine = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, f"User:{name}", None, AclOperation.ANY,
                            AclPermissionType.ANY)
    deadline = time.monotonic() + 30
    while set(admin.describe_acls(mine).result(30)) != set(acls):  # the broker applies them from the metadata log
        assert time.monotonic() < deadline, "the partner's ACLs never showed up"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def partner(secure_broker: SecureBroker) -> Partner:
    settings = secure_broker.settings()  # the super user: what sandan's services and operators can do
    asyncio.run(create_topics(settings=settings))
    user = _kafka_user()
    name, password = user["metadata"]["name"], secrets.token_urlsafe(18)
    acls = _acl_bindings(user)
    # what the template grants: reading and describing the public topics and its own groups, nothing else
    assert {(a.restype, a.name, a.operation) for a in acls} == {
        *((ResourceType.TOPIC, t, op) for t in PUBLIC for op in (AclOperation.READ, AclOperation.DESCRIBE)),
        (ResourceType.GROUP, name, AclOperation.READ), (ResourceType.GROUP, name, AclOperation.DESCRIBE)}
    _create_partner(AdminClient(settings.librdkafka_config()), name, password, acls)

    prefix = f"sec-{uuid.uuid4().hex[:8]}"
    demand, other, order = f"d-{prefix}-a", f"d-{prefix}-b", f"o-{prefix}-a"
    events = [("intake.demands.v1", DemandWithdrawn(demand_id=demand, reason="example_subscriber")),
              ("dispatch.orders.v1", OrderCancelled(order_id=order, demand_id=demand, reason="example_subscriber")),
              ("intake.demands.v1", DemandWithdrawn(demand_id=other, reason="example_subscriber"))]
    published = asyncio.run(publish(settings.aiokafka_kwargs(), events, prefix))
    connection = {"KAFKA_BOOTSTRAP_SERVERS": secure_broker.bootstrap, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                  "KAFKA_SASL_USERNAME": name, "KAFKA_SASL_PASSWORD": password,
                  "KAFKA_SSL_CA_FILE": str(secure_broker.ca_file)}
    return Partner(name, connection, published, settings.librdkafka_config())


def _example(kind: str, tmp_path: Path, group: str, topics: list[str], max_records: int) -> list[str]:
    args = [a for t in topics for a in ("--topic", t)]
    args += ["--group", group, "--max-records", str(max_records), "--timeout", "120"]
    if kind == "python":
        return python_example(*args, "--db", str(tmp_path / "events.sqlite"))
    return java_example(*args, "--dedup-file", str(tmp_path / "handled-ids.txt"))


@pytest.mark.parametrize("kind", EXAMPLES)
def test_the_example_reads_every_public_topic_as_a_read_only_partner(kind: str, partner: Partner,
                                                                     tmp_path: Path) -> None:
    group = f"{partner.name}-{kind}-{uuid.uuid4().hex[:6]}"  # a partner's groups start with its user name
    # no --topic: the default, every public topic (each one must be readable with the partner's ACLs)
    ran = run(_example(kind, tmp_path, group, [], partner.published.records), partner.connection)
    lines = succeeded(ran, f"the {kind} example")
    check(lines, partner.published)
    topics_read = {line.split()[5].split("/")[0] for line in lines if line.startswith(("event ", "duplicate "))}
    assert topics_read == set(partner.published.topics) == {"intake.demands.v1", "dispatch.orders.v1"}


REFUSALS = {  # what the partner tries -> (topics, group suffix or another agency's group, the error it must see)
    "a dead-letter topic": (["intake.demands.v1.dlq"], None, {"python": "TOPIC_AUTHORIZATION_FAILED",
                                                             "java": "TopicAuthorizationException"}),
    "another agency's group": (["intake.demands.v1"], "other-agency-dashboard",
                               {"python": "GROUP_AUTHORIZATION_FAILED", "java": "GroupAuthorizationException"}),
    "a wrong password": (["intake.demands.v1"], None, {"python": "_AUTHENTICATION",
                                                      "java": "SaslAuthenticationException"}),
}


@pytest.mark.parametrize("kind", EXAMPLES)
@pytest.mark.parametrize("attempt", list(REFUSALS))
def test_the_example_stops_with_an_error_when_the_broker_refuses(kind: str, attempt: str, partner: Partner,
                                                                 tmp_path: Path) -> None:
    topics, group, error = REFUSALS[attempt]
    connection = dict(partner.connection)
    if attempt == "a wrong password":
        connection["KAFKA_SASL_PASSWORD"] = "not-" + connection["KAFKA_SASL_PASSWORD"]
    ran = run(_example(kind, tmp_path, group or f"{partner.name}-{kind}-{uuid.uuid4().hex[:6]}", topics, 1),
              connection)
    assert ran.returncode == 1, f"{ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
    assert errors and error[kind] in errors[-1], ran.stderr
    assert not [line for line in ran.stdout if line.startswith("event ")]
    assert ran.seconds < 60, f"took {ran.seconds:.0f}s: it waited for its --timeout (120s) instead of stopping"


def _high_watermarks(admin: dict[str, str], topic: str) -> list[int]:
    consumer = Consumer({**admin, "group.id": "sandan-test-watermarks"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(TOPICS[topic].partitions)]
    finally:
        consumer.close()


def test_the_partner_cannot_write_to_a_public_topic(partner: Partner) -> None:
    topic = "intake.demands.v1"
    before = _high_watermarks(partner.admin, topic)
    c = partner.connection
    producer = Producer({"bootstrap.servers": c["KAFKA_BOOTSTRAP_SERVERS"], "security.protocol": "SASL_SSL",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": c["KAFKA_SASL_USERNAME"],
                         "sasl.password": c["KAFKA_SASL_PASSWORD"], "ssl.ca.location": c["KAFKA_SSL_CA_FILE"],
                         "message.timeout.ms": 30_000})
    reports: list[KafkaError | None] = []
    producer.produce(topic, b'{"not": "allowed"}', key=b"k", on_delivery=lambda err, _msg: reports.append(err))
    started = time.monotonic()
    assert producer.flush(45) == 0
    assert time.monotonic() - started < 30, "refused by the broker, not timed out"
    assert len(reports) == 1 and reports[0] is not None, reports
    assert reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports[0]
    assert _high_watermarks(partner.admin, topic) == before  # nothing was written
