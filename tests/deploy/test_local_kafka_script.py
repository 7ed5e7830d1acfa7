"""deploy/local/kafka.sh formats storage whatever its cluster id looks like.

About 1 random cluster id in 64 starts with '-'; passed as a separate word it was read as an option and the
format failed, so the demo, the tests and CI failed at random on a fresh machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"


@pytest.mark.parametrize("cluster_id", ["-AbCdEfGhIjKlMnOpQrStU", "--bCdEfGhIjKlMnOpQrStU", "AbCdEfGhIjKlMnOpQrSt-w"])
def test_storage_formats_with_a_cluster_id_that_starts_with_a_dash(tmp_path: Path, cluster_id: str) -> None:
    env = {**os.environ, "KAFKA_STATE_DIR": str(tmp_path), "KAFKA_PORT": "29392", "KAFKA_CONTROLLER_PORT": "29393",
           "KAFKA_CLUSTER_ID": cluster_id}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    done = subprocess.run(["bash", str(SCRIPT), "format"], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"cluster.id={cluster_id}" in (tmp_path / "data" / "meta.properties").read_text()
    assert done.stdout.strip() == f"cluster.id={cluster_id}"
