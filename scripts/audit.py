"""The dependency audit (scripts/test.sh): every package constraints.txt pins, checked with pip-audit against
PyPI's advisory data (its JSON API), or OSV when PyPI's does not answer.

    .venv/bin/python scripts/audit.py

Exits 1 when a pinned version has a known vulnerability that .pip-audit-ignore does not list (with a reason).
Fix by bumping the pin in constraints.txt (then run the tests of that package's users), or accept it there.
When neither service can be asked (an offline machine, a mirror without the JSON API: pip-audit then reports every
package as "not found" and would pass), it says so loudly and exits 0, or 1 with SANDAN_AUDIT_REQUIRED=1 (a CI
with the network should set it): a skipped audit must never look like a clean one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
IGNORE = ROOT / ".pip-audit-ignore"
PIP_AUDIT = Path(sys.executable).with_name("pip-audit")


def accepted(path: Path = IGNORE) -> dict[str, str]:
    """advisory id -> the reason it is accepted; a line without a reason is an error."""
    out = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        vuln, _, reason = line.partition("#")
        if not re.fullmatch(r"[A-Z][A-Z0-9]*-[0-9A-Za-z-]+", vuln.strip()) or not reason.strip():
            sys.exit(f"audit: {path.name}:{number}: expected `<advisory id>  # <reason>`, got {line!r}")
        out[vuln.strip()] = reason.strip()
    return out


def run(service: str, ignored: dict[str, str]) -> dict | None:
    """pip-audit's JSON report, or None when the service could not be asked."""
    command = [str(PIP_AUDIT), "--no-deps", "--disable-pip", "-r", str(CONSTRAINTS), "--progress-spinner", "off",
               "--vulnerability-service", service, "--format", "json",
               *(arg for vuln in ignored for arg in ("--ignore-vuln", vuln))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"audit: pip-audit via {service} failed: {result.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    dependencies = report.get("dependencies", [])
    if dependencies and all("skip_reason" in d for d in dependencies):
        print(f"audit: {service} answered for none of the {len(dependencies)} packages "
              f"({dependencies[0]['skip_reason']})", file=sys.stderr)
        return None
    return report


def main() -> int:
    ignored = accepted()
    for vuln, reason in ignored.items():
        print(f"audit: accepted {vuln}: {reason}", file=sys.stderr)
    for service in ("pypi", "osv"):
        report = run(service, ignored)
        if report is not None:
            break
    else:
        print("audit: NOT AUDITED: neither PyPI's JSON API nor OSV answered from this machine", file=sys.stderr)
        return 1 if os.environ.get("SANDAN_AUDIT_REQUIRED") == "1" else 0
    dependencies = report["dependencies"]
    skipped = [d for d in dependencies if "skip_reason" in d]
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])]
    for name, version, vuln in found:
        fixes = ", ".join(vuln.get("fix_versions", [])) or "no fixed release yet"
        print(f"audit: {name} {version}: {vuln['id']} (fixed in: {fixes})", file=sys.stderr)
    for d in skipped:
        print(f"audit: not audited: {d['name']}: {d['skip_reason']}", file=sys.stderr)
    print(f"audit: {len(dependencies) - len(skipped)} packages audited via {service}, {len(found)} known "
          f"vulnerabilities, {len(ignored)} accepted in {IGNORE.name}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
