"""The packages one service's image installs, pinned as constraints.txt pins them: a requirements file for
`cyclonedx-py requirements` (scripts/sbom.sh).

    python scripts/sbom_requirements.py scoring    # prints name==version lines, one per third-party package

The service's dependencies are followed through the installed metadata of .venv (scripts/bootstrap.sh installs
every package with -c constraints.txt, as the Dockerfiles do), extras and environment markers included, for the
images' interpreter (CPython 3.11 on Linux, the same as the venv's). sandan's own packages (contracts, eventbus,
the service, scoring's kernel) are the SBOM's root component, not listed. Every other package must be pinned in
constraints.txt and installed at that version: otherwise this exits 1 naming it (an image would not install
what the SBOM says).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
SERVICES = ("intake", "dispatch", "scoring", "notify", "gateway")
# What each image installs from the repository (its Dockerfile's `pip install` of local paths and wheels).
LOCAL = {"sandan-contracts", "sandan-eventbus", "sandan-kernel", *(f"sandan-{s}" for s in SERVICES)}
EXTRA_ROOTS = {"scoring": ("sandan-kernel",)}  # scoring's image also installs its native kernel's wheel


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path = CONSTRAINTS) -> dict[str, tuple[str, str]]:
    """canonical name -> (name as written, version) for every `name==version` line."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            out[canonical(name)] = (name.strip(), version.strip())
    return out


def closure(service: str) -> dict[str, str]:
    """canonical name -> installed version of every third-party package the service's image installs."""
    environment = {k: str(v) for k, v in default_environment().items()}
    seen: dict[str, set[str]] = {}  # package -> extras already followed
    found: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(f"sandan-{service}", frozenset()),
                                             *((r, frozenset()) for r in EXTRA_ROOTS.get(service, ()))]
    while todo:
        name, extras = todo.pop()
        key = canonical(name)
        if key in seen and extras <= seen[key]:
            continue
        seen.setdefault(key, set()).update(extras)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            sys.exit(f"sbom: {name} (needed by sandan-{service}) is not installed: run scripts/bootstrap.sh")
        if key not in LOCAL:
            found[key] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            wanted = [{**environment, "extra": e} for e in (extras or {""})]
            if requirement.marker is None or any(requirement.marker.evaluate(env) for env in wanted):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return found


def requirements(service: str) -> list[str]:
    pinned = pins()
    lines, problems = [], []
    for key, version in sorted(closure(service).items()):
        if key not in pinned:
            problems.append(f"{key} {version} is not pinned in constraints.txt")
        elif pinned[key][1] != version:
            problems.append(f"{key} is {version} in .venv but {pinned[key][1]} in constraints.txt")
        else:
            lines.append(f"{pinned[key][0]}=={version}")
    if problems:
        sys.exit(f"sbom: sandan-{service}: " + "; ".join(problems) + " (scripts/bootstrap.sh installs the pins)")
    return lines


def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in SERVICES:
        sys.exit(f"usage: sbom_requirements.py {{{'|'.join(SERVICES)}}}")
    sys.stdout.write("".join(f"{line}\n" for line in requirements(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
