"""Regenerate the gRPC code from the .proto files: `python contracts/gen_protos.py [out_dir]`.

The generated modules are committed; tests/test_contracts_protos.py regenerates into a temp dir and
fails if anything differs, so the committed code always matches the protos.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

SRC = Path(__file__).resolve().parent / "src"
PROTOS = sorted((SRC / "sandan_contracts" / "rpc").glob("*.proto"))


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for proto in PROTOS:
        rel = proto.relative_to(SRC)
        code = protoc.main(
            ["grpc_tools.protoc", f"-I{SRC}", f"--python_out={out}", f"--pyi_out={out}",
             f"--grpc_python_out={out}", str(rel)]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {rel}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)
