"""The event contract served for subscribers: every schema `$id` (and so every CloudEvents `ce_dataschema`)
resolves at the gateway to the very file the producers are held to, and so do the AsyncAPI document's `$ref`s."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urljoin, urlsplit

from sandan_contracts.asyncapi import DOCUMENT
from sandan_contracts.events import EVENT_TYPES
from sandan_contracts.schemas import SCHEMA_BASE_URL, SCHEMA_DIR, schema_id


def _path_of(uri: str) -> str:
    return urlsplit(uri).path


async def test_every_event_schema_id_resolves_to_its_committed_file(gateway):
    ids = {schema_id(event) for event in EVENT_TYPES.values()}
    assert len(ids) == len(EVENT_TYPES) and len(ids) > 20
    for uri in sorted(ids):
        reply = await gateway.client.get(_path_of(uri))  # no session: the contract is public
        assert reply.status_code == 200, uri
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.headers["access-control-allow-origin"] == "*"
        served = reply.json()
        assert served["$id"] == uri
        assert served == json.loads((SCHEMA_DIR / uri.removeprefix(SCHEMA_BASE_URL)).read_text(encoding="utf-8"))


async def test_every_committed_schema_file_is_served(gateway):
    files = sorted(SCHEMA_DIR.rglob("*.json"))
    assert files
    for file in files:
        declared = json.loads(file.read_text(encoding="utf-8"))["$id"]
        reply = await gateway.client.get(_path_of(declared))
        assert reply.status_code == 200 and reply.content == file.read_bytes(), declared


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref" and isinstance(v, str)] + \
            [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_the_asyncapi_document_and_its_schema_references_resolve_from_the_same_origin(gateway):
    reply = await gateway.client.get("/asyncapi.json")
    assert reply.status_code == 200
    document = reply.json()
    assert document == json.loads(DOCUMENT.read_text(encoding="utf-8"))
    files = sorted({r.partition("#")[0] for r in _refs(document) if not r.startswith("#")})
    assert files and all(f.startswith("schemas/") for f in files)
    base = str(gateway.client.base_url) + "/asyncapi.json"
    for ref in files:
        resolved = await gateway.client.get(_path_of(urljoin(base, ref)))
        assert resolved.status_code == 200, ref
        assert resolved.json()["$id"] == SCHEMA_BASE_URL + ref.removeprefix("schemas/")


async def test_nothing_else_is_reachable_under_schemas(gateway):
    for path in ("/schemas/", "/schemas/intake.demands.v1", "/schemas/intake.demands.v1/",
                 "/schemas/../schemas.py", "/schemas/%2e%2e/schemas.py", "/schemas/..%2fasyncapi.py",
                 "/schemas/intake.demands.v1/NoSuchEvent.v1.json", "/schemas/intake.demands.v1/x.py"):
        reply = await gateway.client.get(path)
        assert reply.status_code == 404, path
        assert "from __future__" not in reply.text and "sandan_contracts" not in reply.text, path
        if "/../" not in path:  # the client normalises that one to /schemas.py, a page's 404
            assert reply.headers["content-type"].startswith("application/problem+json"), path
