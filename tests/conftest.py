"""Fixtures for every test folder under tests/ (the shared servers are in the repository's conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.kafka_tls import SecureBroker, running_secure_broker


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A private SASL_SSL broker with ACLs (tests/kafka_tls.py), one per test module: starting it is the cost."""
    if os.environ.get("SANDAN_UNIT_ONLY") == "1":
        pytest.skip("SANDAN_UNIT_ONLY=1: no private broker for the unit subset")
    if not shutil.which(os.environ.get("JAVA", "java")):
        pytest.fail("java is needed for the private SASL_SSL broker (apt-get install openjdk-17-jre-headless)")
    with running_secure_broker(tmp_path_factory.mktemp("kafka-sasl")) as broker:
        yield broker
