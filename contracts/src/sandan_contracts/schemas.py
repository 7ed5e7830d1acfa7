"""JSON Schemas of every published message, and the backward-compatibility check between two versions of one.

    python -m sandan_contracts.schemas write               # regenerate schemas/<topic>/<Type>.v<version>.json
    python -m sandan_contracts.schemas check               # fail if the committed files are stale or the change breaks
    python -m sandan_contracts.schemas check --base main   # also compare with the schemas committed on a git ref

A schema describes the whole message on the wire: the envelope (`sandan_contracts.envelope.Envelope`) whose
`data` is the event's own model schema and whose `type` / `schema_version` are constants. The files are generated
from the pydantic models and committed, so non-Python consumers and reviewers can see every change in a diff.

`compatibility_problems(old, new)` is a pure function over two schema dicts. Within a `vN` topic only additive
changes are allowed; it reports, in words, everything a reader of the old contract would trip over:
  - a property of the old schema removed;
  - a property's type changed (JSON types, nullability, format, const);
  - an enum that lost values (adding values is allowed);
  - a constraint narrowed (smaller maxLength/maxItems/maximum, larger minLength/minimum, new or changed pattern,
    additionalProperties closed);
  - a property required that the old schema did not require (whether new or existing).
Titles, descriptions and defaults are documentation and never a problem.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sandan_contracts.envelope import Envelope
from sandan_contracts.events import EVENT_TYPES, Event

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Where the schemas are published: `$id` = this + `relative_path(event)`, the same layout as `schemas/` here (and
# `contracts/asyncapi.yaml` refers to the files by that relative path). A host serving the directory as static
# files at `/schemas/` (the gateway, a web server, a mirror of the repo) makes every `$id` resolve.
SCHEMA_BASE_URL = "https://sandan.example.org/schemas/"

Schema = dict[str, Any]


# ---- generation ----------------------------------------------------------------------------------------------
def relative_path(event: type[Event]) -> str:
    """Where an event's schema lives under `schemas/`: `<topic>/<Type>.v<version>.json`."""
    return f"{event.TOPIC}/{event.TYPE}.v{event.VERSION}.json"


def schema_id(event: type[Event]) -> str:
    """The `$id` of an event's message schema (also the CloudEvents `dataschema` of its messages)."""
    return SCHEMA_BASE_URL + relative_path(event)


def schema_path(uri: str, directory: Path = SCHEMA_DIR) -> Path:
    """The file of a schema `$id` (ValueError for an `$id` that is not one of ours)."""
    if not uri.startswith(SCHEMA_BASE_URL) or ".." in uri:
        raise ValueError(f"{uri!r} is not a sandan schema id")
    return directory / uri.removeprefix(SCHEMA_BASE_URL)


def message_schema(event: type[Event]) -> Schema:
    """The schema of a full message carrying `event`: the envelope with `data` = the event's model schema."""
    envelope = Envelope.model_json_schema()
    data = event.model_json_schema()
    defs: dict[str, Any] = dict(envelope.pop("$defs", {}))
    for name, definition in data.pop("$defs", {}).items():
        if name in defs and defs[name] != definition:
            raise ValueError(f"{event.TYPE}: $defs/{name} differs between the envelope and the event")
        defs[name] = definition  # refs are "#/$defs/<name>", so they stay valid at the message's root

    props = envelope["properties"]
    props["type"] = {"const": event.TYPE, "title": "Type", "type": "string"}
    props["schema_version"] = {"const": event.VERSION, "title": "Schema Version", "type": "integer"}
    props["key"] = {**props["key"], "description": f"Kafka message key: equals data.{event.KEY}"}
    props["data"] = data

    schema: Schema = {
        "$schema": DIALECT,
        "$id": schema_id(event),
        "title": f"{event.TYPE} v{event.VERSION}",
        "description": f"A {event.TYPE} message on topic {event.TOPIC}, keyed by {event.KEY}.",
        "x-topic": event.TOPIC,
        "x-key": event.KEY,
        **{k: v for k, v in envelope.items() if k != "title"},
    }
    if defs:
        schema["$defs"] = defs
    return schema


def generate() -> dict[str, Schema]:
    """Every event's message schema, by its path relative to `schemas/`."""
    out = {relative_path(cls): message_schema(cls) for cls in EVENT_TYPES.values()}
    return dict(sorted(out.items()))


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def load_committed(directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """The committed schema files' text, by path relative to `directory`."""
    if not directory.is_dir():
        return {}
    return {p.relative_to(directory).as_posix(): p.read_text("utf-8") for p in sorted(directory.rglob("*.json"))}


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema and delete stale files; returns the paths that changed."""
    wanted = {rel: render(schema) for rel, schema in generate().items()}
    existing = load_committed(directory)
    changed = []
    for rel, text in wanted.items():
        if existing.get(rel) != text:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, "utf-8")
            changed.append(rel)
    for rel in sorted(set(existing) - set(wanted)):
        (directory / rel).unlink()
        changed.append(rel)
    for sub in sorted(directory.iterdir()) if directory.is_dir() else ():
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    return changed


# ---- compatibility -------------------------------------------------------------------------------------------
_JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
# raising a lower bound or lowering an upper bound (or adding either) narrows what is accepted
_LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
_UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
_EXACT = ("pattern", "multipleOf", "format")


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What breaks for readers when a message schema moves from `old` to `new`; [] when the change is additive.

    Both are JSON Schemas as pydantic emits them (local `$ref`s into `$defs`, `anyOf` for unions and nullables).
    """
    return _Compare(old, new).run()


class _Compare:
    def __init__(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self.old_root, self.new_root = old, new
        self.problems: list[str] = []
        self._active: set[tuple[str | None, str | None]] = set()  # $ref pairs being compared (recursion guard)

    def run(self) -> list[str]:
        self.node("", self.old_root, self.new_root)
        return self.problems

    def report(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '<message>'}: {message}")

    # -- resolution
    @staticmethod
    def _resolve(root: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
        """Follow `$ref` (and single-element `allOf`) so the node carries its definition's keywords inline."""
        node = dict(node)
        for _ in range(64):
            if "$ref" in node:
                ref = node.pop("$ref")
                if not ref.startswith("#/"):
                    raise ValueError(f"only local $refs are supported, got {ref!r}")
                target: Any = root
                for part in ref[2:].split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
                node = {**target, **node}  # keywords next to $ref refine the definition
            elif isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
                node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
            else:
                return node
        raise ValueError("$ref chain too deep")

    @staticmethod
    def _alternatives(node: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list):
                base = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf", "discriminator")}
                return [{**base, **alt} for alt in node[key]]
        return None

    def _types(self, root: Mapping[str, Any], node: Mapping[str, Any]) -> set[str]:
        node = self._resolve(root, node)
        alts = self._alternatives(node)
        if alts is not None:
            return set().union(*(self._types(root, a) for a in alts)) if alts else set()
        declared = node.get("type")
        if isinstance(declared, str):
            return {declared}
        if isinstance(declared, list):
            return set(declared)
        values = [node["const"]] if "const" in node else node.get("enum")
        if values is not None:
            return {_json_type(v) for v in values}
        if node.get("properties") is not None:
            return {"object"}
        return set(_JSON_TYPES)  # unconstrained

    # -- comparison
    def node(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        refs = (old.get("$ref"), new.get("$ref"))
        if refs != (None, None):
            if refs in self._active:  # a recursive definition already being compared further up
                return
            self._active.add(refs)
            try:
                self._node(path, old, new)
            finally:
                self._active.discard(refs)
        else:
            self._node(path, old, new)

    def _node(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        old, new = self._resolve(self.old_root, old), self._resolve(self.new_root, new)

        old_types, new_types = self._types(self.old_root, old), self._types(self.new_root, new)
        if old_types != new_types:
            self.report(path, f"type changed from {_show(old_types)} to {_show(new_types)}")
            return

        old_alts, new_alts = self._alternatives(old), self._alternatives(new)
        if old_alts is not None or new_alts is not None:
            self.union(path, old_alts or [old], new_alts or [new])
            return

        self.values(path, old, new)
        self.constraints(path, old, new)
        if "object" in old_types:
            self.object(path, old, new)
        if "array" in old_types:
            self.array(path, old, new)

    def union(self, path: str, old_alts: list[dict[str, Any]], new_alts: list[dict[str, Any]]) -> None:
        """Each old alternative must still be accepted by a compatible new alternative (nulls pair with nulls)."""
        def non_null(alts: list[dict[str, Any]], root: Mapping[str, Any]) -> list[dict[str, Any]]:
            return [a for a in alts if self._types(root, a) != {"null"}]

        old_real, new_real = non_null(old_alts, self.old_root), non_null(new_alts, self.new_root)
        if len(old_real) == 1 and len(new_real) == 1:  # the common `X | None`
            self.node(path, old_real[0], new_real[0])
            return
        for i, old_alt in enumerate(old_real):
            trial_results = []
            for new_alt in new_real:
                trial = _Compare(self.old_root, self.new_root)
                trial._active = set(self._active)
                trial.node(path, old_alt, new_alt)
                trial_results.append(trial.problems)
            if not any(not problems for problems in trial_results):
                self.report(path, f"union alternative #{i + 1} of the old schema is no longer accepted as it was")

    def values(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        old_values = _allowed_values(old)
        new_values = _allowed_values(new)
        if new_values is None:
            return  # unrestricted (or restriction lifted): widening
        if old_values is None:
            self.report(path, f"now restricted to {_show_values(new_values)}")
            return
        removed = [v for v in old_values if not any(_same(v, w) for w in new_values)]
        if removed:
            what = "const changed" if "const" in old and "const" in new else "enum values removed"
            self.report(path, f"{what}: {_show_values(removed)} no longer allowed")

    def constraints(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        for kw in _LOWER_BOUNDS:
            if kw in new and (kw not in old or new[kw] > old[kw]):
                self.report(path, f"{kw} narrowed from {old.get(kw, 'none')} to {new[kw]}")
        for kw in _UPPER_BOUNDS:
            if kw in new and (kw not in old or new[kw] < old[kw]):
                self.report(path, f"{kw} narrowed from {old.get(kw, 'none')} to {new[kw]}")
        for kw in _EXACT:
            if old.get(kw) != new.get(kw):
                self.report(path, f"{kw} changed from {old.get(kw)!r} to {new.get(kw)!r}")
        if new.get("uniqueItems") and not old.get("uniqueItems"):
            self.report(path, "items must now be unique")

    def object(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
        prefix = f"{path}." if path else ""
        for name, old_prop in old_props.items():
            if name not in new_props:
                self.report(f"{prefix}{name}", "property removed")
                continue
            self.node(f"{prefix}{name}", old_prop, new_props[name])
        for name in sorted(new_required - old_required):
            what = "new required property" if name not in old_props else "property is now required"
            self.report(f"{prefix}{name}", what)

        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            self.report(path, "additional properties are no longer allowed")
        elif isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.node(f"{prefix}*", old_extra, new_extra)
        elif old_extra is True and isinstance(new_extra, dict) and new_extra:
            self.report(path, "additional properties are now constrained")

    def array(self, path: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        old_items, new_items = old.get("items"), new.get("items")
        if isinstance(new_items, dict) and new_items:
            self.node(f"{path}[]", old_items if isinstance(old_items, dict) else {}, new_items)
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        for i, new_item in enumerate(new_prefix):
            self.node(f"{path}[{i}]", old_prefix[i] if i < len(old_prefix) else {}, new_item)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _allowed_values(node: Mapping[str, Any]) -> list[Any] | None:
    if "const" in node:
        return [node["const"]]
    if "enum" in node:
        return list(node["enum"])
    return None


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _show(types: set[str]) -> str:
    return "any" if types == set(_JSON_TYPES) else "|".join(sorted(types)) or "nothing"


def _show_values(values: Iterable[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


# ---- the check -----------------------------------------------------------------------------------------------
def check(committed: Mapping[str, str], generated: Mapping[str, Schema], *, label: str = "committed") -> list[str]:
    """Problems between schema files `committed` (text by relative path) and `generated` schemas.

    Breaking changes are reported per event; stale or missing files too (run `write` after an additive change).
    """
    problems: list[str] = []
    old_types: dict[tuple[str, str], set[int]] = {}
    for rel in committed:
        topic, _, filename = rel.partition("/")
        type_name, _, version = filename.removesuffix(".json").rpartition(".v")
        old_types.setdefault((topic, type_name), set()).add(int(version) if version.isdigit() else -1)

    for rel in sorted(set(committed) | set(generated)):
        if rel not in generated:
            problems.append(f"{rel}: event removed (the {label} schema has no model any more) [breaking]")
            continue
        topic, _, filename = rel.partition("/")
        type_name, _, version = filename.removesuffix(".json").rpartition(".v")
        if rel not in committed:
            earlier = old_types.get((topic, type_name))
            if earlier:
                problems.append(
                    f"{rel}: new schema_version of {type_name} on {topic} (had v{sorted(earlier)}): readers of "
                    f"the {label} contract reject it as unknown; keep the version for additive changes, put a "
                    f"breaking change on a new topic [breaking]"
                )
            else:
                problems.append(f"{rel}: not in the {label} schemas (run `python -m sandan_contracts.schemas write`)")
            continue
        old = json.loads(committed[rel])
        for problem in compatibility_problems(old, generated[rel]):
            problems.append(f"{rel}: {problem} [breaking]")
        if committed[rel] != render(generated[rel]) and label == "committed":
            problems.append(f"{rel}: differs from the models (run `python -m sandan_contracts.schemas write`)")
    return problems


def committed_at(ref: str, directory: Path = SCHEMA_DIR) -> dict[str, str]:
    """The schema files as committed on git `ref` (empty when the directory did not exist there)."""
    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed executable, arguments from the command line of a dev tool
            ["git", *args], cwd=directory.parent, check=True, capture_output=True, text=True  # noqa: S607
        ).stdout

    prefix = git("rev-parse", "--show-prefix").strip() + directory.name + "/"
    try:
        listing = git("ls-tree", "--full-tree", "-r", "--name-only", ref, "--", prefix)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"git could not list {prefix} at {ref!r}: {exc.stderr.strip()}") from exc
    files = [line for line in listing.splitlines() if line.endswith(".json")]
    return {f.removeprefix(prefix): git("show", f"{ref}:{f}") for f in files}


def main(argv: list[str] | None = None) -> int:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m sandan_contracts.schemas", description=summary)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="regenerate the committed JSON Schemas from the models")
    check_cmd = sub.add_parser("check", help="fail on stale schema files or breaking changes")
    check_cmd.add_argument("--base", metavar="GIT_REF", help="also check compatibility with the schemas on this ref")
    args = parser.parse_args(argv)

    if args.command == "write":
        changed = write()
        for rel in changed:
            print(f"wrote {rel}")
        print(f"{len(changed)} schema file(s) changed under {SCHEMA_DIR}")
        return 0

    generated = generate()
    problems = check(load_committed(), generated)
    if args.base:
        problems += [f"vs {args.base}: {p}" for p in check(committed_at(args.base), generated, label=args.base)
                     if p.endswith("[breaking]")]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"{len(generated)} schemas up to date and compatible")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
