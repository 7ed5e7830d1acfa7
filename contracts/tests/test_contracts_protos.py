"""(f) The committed gRPC code is exactly what contracts/gen_protos.py generates from the .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from contracts_support import REPO_ROOT

RPC = REPO_ROOT / "contracts" / "src" / "sandan_contracts" / "rpc"
GENERATED = ("*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py")


def _gen_protos():
    spec = importlib.util.spec_from_file_location("sandan_gen_protos", REPO_ROOT / "contracts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _generated(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for pattern in GENERATED for p in directory.glob(pattern)}


def test_regenerated_protos_are_byte_identical(tmp_path: Path) -> None:
    _gen_protos().generate(tmp_path)
    fresh = _generated(tmp_path / "sandan_contracts" / "rpc")
    committed = _generated(RPC)
    protos = sorted(p.stem for p in RPC.glob("*.proto"))
    assert protos == ["audit", "dispatch", "intake", "notify", "ops", "scoring"]
    assert sorted(fresh) == sorted(f"{stem}{suffix}" for stem in protos
                                   for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"))
    assert sorted(committed) == sorted(fresh), "stale or missing generated files: run python contracts/gen_protos.py"
    for name, content in fresh.items():
        assert committed[name] == content, f"{name} differs: run python contracts/gen_protos.py"


def test_generated_modules_import() -> None:
    from sandan_contracts.rpc import dispatch_pb2, dispatch_pb2_grpc, intake_pb2, intake_pb2_grpc

    assert intake_pb2.DESCRIPTOR.package == "sandan.intake.v1"
    assert dispatch_pb2.DESCRIPTOR.package == "sandan.dispatch.v1"
    assert hasattr(intake_pb2_grpc, "IntakeServicer") and hasattr(dispatch_pb2_grpc, "DispatchServicer")
