"""The role x method matrix covers exactly the methods the protos define: a new method without a row would be
refused to everyone, and a row without a method is a mistake (a renamed method)."""

from __future__ import annotations

import importlib

from sandan_contracts.access import ACCESS

SERVICES = ["intake", "dispatch", "scoring", "notify", "ops"]


def _methods() -> set[str]:
    out = set()
    for name in SERVICES:
        module = importlib.import_module(f"sandan_contracts.rpc.{name}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            out |= {f"/{service.full_name}/{m.name}" for m in service.methods}
    return out


def test_every_method_has_a_row_and_every_row_a_method() -> None:
    methods = _methods()
    assert methods - set(ACCESS.rules) == set(), "methods without a row in rpc/access.toml"
    assert set(ACCESS.rules) - methods == set(), "rows in rpc/access.toml naming no method"


def test_every_row_names_roles_and_says_its_scope() -> None:
    for method, rule in ACCESS.rules.items():
        assert rule.roles, method
        assert rule.scope.strip(), f"{method}: say what scope the service checks"
        assert len(set(rule.roles)) == len(rule.roles), method


def test_only_notify_reads_contacts_for_delivery_and_service_roles_stay_narrow() -> None:
    contacts = {"/sandan.intake.v1.Intake/GetDemandContact", "/sandan.dispatch.v1.Dispatch/GetMemberContact",
                "/sandan.dispatch.v1.Dispatch/GetUnitContact"}
    for method in contacts:
        assert ACCESS.roles_for(method) == ("service_notify",)
    for method, rule in ACCESS.rules.items():
        if "service_notify" in rule.roles:
            assert method in contacts, f"notify's identity may only read contacts, not {method}"
        if "partner" in rule.roles:  # read-only agencies: reads of public figures only
            assert method.rsplit("/", 1)[1] in {"ListMenu", "Leaderboard", "UnitReport", "CommunityNotice",
                                               "RuleSets", "PublicNames"}, method  # names members consented to show
