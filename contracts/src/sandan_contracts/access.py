"""The role x method matrix (`rpc/access.toml`): who may call which gRPC method.

    ACCESS.roles_for("/sandan.intake.v1.Intake/PostDemand")  -> ("resident", "grid_worker", "branch_secretary")

Part of the public contract: the services enforce it, the gateway and the docs read it, and a test walks it.
A method without a row is refused to everyone.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files
from typing import Any


@dataclass(frozen=True)
class Rule:
    method: str  # the full gRPC path: /<package>.<Service>/<Method>
    roles: tuple[str, ...]
    scope: str


@dataclass(frozen=True)
class AccessMatrix:
    roles: dict[str, str]  # role -> what it is
    rules: dict[str, Rule]  # full method path -> rule

    def roles_for(self, method: str) -> tuple[str, ...]:
        rule = self.rules.get(method)
        return rule.roles if rule else ()

    def services(self) -> set[str]:
        return {m.split("/")[1] for m in self.rules}


def parse(data: dict[str, Any]) -> AccessMatrix:
    roles = {str(k): str(v) for k, v in data.pop("roles").items()}
    rules: dict[str, Rule] = {}
    for service, methods in data.items():
        for method, row in methods.items():
            unknown = [r for r in row["roles"] if r not in roles]
            if unknown:
                raise ValueError(f"{service}.{method}: unknown roles {unknown}")
            path = f"/{service}/{method}"
            rules[path] = Rule(path, tuple(row["roles"]), str(row.get("scope", "")))
    return AccessMatrix(roles, rules)


def load() -> AccessMatrix:
    return parse(tomllib.loads(files("sandan_contracts").joinpath("rpc/access.toml").read_text("utf-8")))


ACCESS = load()
ROLES = tuple(ACCESS.roles)
