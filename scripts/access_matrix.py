"""The role x method matrix as a page people read: docs/access-matrix.md, generated from the contract's access.toml.

    python scripts/access_matrix.py           # write docs/access-matrix.md
    python scripts/access_matrix.py --check   # exit 1 if the page is not what access.toml says (a test runs this)

The services enforce the same data (sandan_contracts.access.ACCESS), so the page cannot drift from what they do
once the check passes; tests/integration/test_access_matrix.py walks the matrix against the running services.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sandan_contracts.access import ACCESS, AccessMatrix

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "access-matrix.md"
# Short column names for the compact text table (the test log, a closing note).
SHORT = {"resident": "res", "grid_worker": "gwk", "hotline_operator": "hot", "member": "mem", "grid_leader": "gld",
         "branch_secretary": "sec", "town_office": "twn", "county_office": "cty", "unit_admin": "uad", "partner": "ptn",
         "operator": "ops", "service_intake": "sIn", "service_dispatch": "sDi", "service_scoring": "sSc",
         "service_notify": "sNo", "service_gateway": "sGw"}


def rows(matrix: AccessMatrix) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(service, method, roles, scope) in the file's order (services, then methods, as access.toml lists them)."""
    found = []
    for path, rule in matrix.rules.items():
        service, method = path.strip("/").split("/")
        found.append((service, method, rule.roles, rule.scope))
    order = {s: i for i, s in enumerate(dict.fromkeys(r[0] for r in found))}
    return sorted(found, key=lambda r: order[r[0]])


def markdown(matrix: AccessMatrix = ACCESS) -> str:
    roles = list(matrix.roles)
    lines = [
        "# Who may call what: the role x method matrix",
        "",
        "Generated from `contracts/src/sandan_contracts/rpc/access.toml` by `python scripts/access_matrix.py`; do not",
        "edit by hand (a test checks the page is fresh). ✓: a token with this role may call the method; the service",
        "then checks the scope (last column) and refuses with PERMISSION_DENIED outside it. A method without a row is",
        "refused to everyone; only `grpc.health.v1.Health` is open. Without a valid token every call is",
        "UNAUTHENTICATED.",
        "",
        "| role | who |",
        "|---|---|",
        *[f"| `{role}` | {text} |" for role, text in matrix.roles.items()],
        "",
        "| method | " + " | ".join(f"`{r}`" for r in roles) + " | scope |",
        "|---|" + "---|" * len(roles) + "---|",
    ]
    service_before = ""
    for service, method, allowed, scope in rows(matrix):
        if service != service_before:
            lines.append(f"| **{service}** |" + " |" * len(roles) + " |")
            service_before = service
        marks = " | ".join("✓" if r in allowed else "" for r in roles)
        lines.append(f"| {method} | {marks} | {scope.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def text_table(allowed: dict[str, set[str]], roles: list[str] | None = None) -> str:
    """A fixed-width table: one line per method (`/Service/Method` keys of `allowed`), an x under each role allowed."""
    roles = roles or list(ACCESS.roles)
    width = max(len(m.rsplit("/", 2)[-2].rsplit(".", 1)[-1] + "." + m.rsplit("/", 1)[-1]) for m in allowed)
    head = " " * width + "  " + " ".join(f"{SHORT.get(r, r[:3]):>3}" for r in roles)
    lines = [head]
    for path in allowed:
        service, method = path.strip("/").split("/")
        name = f"{service.rsplit('.', 1)[-1]}.{method}"
        lines.append(f"{name:<{width}}  " + " ".join(f"{'x' if r in allowed[path] else '.':>3}" for r in roles))
    legend = ", ".join(f"{SHORT.get(r, r)}={r}" for r in roles)
    return "\n".join([*lines, "", legend])


def main(argv: list[str]) -> int:
    page = markdown()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python scripts/access_matrix.py", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)} ({len(ACCESS.rules)} methods, {len(ACCESS.roles)} roles)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
