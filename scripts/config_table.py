"""Render each service's settings class (pydantic-settings) as the Markdown table of its README.

The table sits between `<!-- settings:start -->` and `<!-- settings:end -->` in services/<name>/README.md: one
row per variable (the field's alias, or the class's env_prefix + the field's name), its type, its default and its
`Field(description=...)`. A field may say how it is shown with `json_schema_extra={"env_type": ...,
"env_default": ...}`. The root README's table holds the settings every service shares (Kafka, OIDC, gRPC TLS), one
table per class under its docstring's first line; the few variables read outside a settings class (libpq's, the
places file, OTEL_*) are described by hand beside it.

    python scripts/config_table.py           # rewrite the tables
    python scripts/config_table.py --check   # exit 1 if a README's table is not what the code says
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- settings:start -->", "<!-- settings:end -->"

# README -> the settings class(es) whose variables it documents ("module:Class")
TABLES: dict[str, list[str]] = {
    "services/scoring/README.md": ["sandan_scoring.settings:Settings"],
    "services/notify/README.md": ["sandan_notify.settings:Settings"],
    "services/dispatch/README.md": ["sandan_dispatch.settings:Settings"],
    "services/intake/README.md": ["sandan_intake.settings:Settings"],
    "services/gateway/README.md": ["sandan_gateway.settings:Settings"],
    "README.md": ["sandan_eventbus.kafka:KafkaSettings", "sandan_eventbus.security:OidcSettings",
                  "sandan_eventbus.security:GrpcTlsSettings"],
}

TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path",
              SecretStr: "string (secret)"}


def settings_class(spec: str) -> type[BaseSettings]:
    module, name = spec.split(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, BaseSettings), spec
    return cls


def variable(cls: type[BaseSettings], name: str, info: FieldInfo) -> str:
    alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
    return (alias or f"{cls.model_config.get('env_prefix', '')}{name}").upper()


def _extra(info: FieldInfo, key: str) -> str | None:
    extra = info.json_schema_extra
    value = extra.get(key) if isinstance(extra, dict) else None
    return None if value is None else str(value)


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(f"`{v}`" for v in typing.get_args(annotation))  # cell() escapes the bars
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    return TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default(info: FieldInfo) -> str:
    shown = _extra(info, "env_default")
    if shown is not None:
        return shown
    if info.is_required():
        return "(required)"
    value = info.default if info.default_factory is None else None
    if isinstance(value, SecretStr):
        value = value.get_secret_value() and "(set)"
    if value is PydanticUndefined or value in (None, ""):
        return "—"
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(cls: type[BaseSettings]) -> str:
    rows = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, info in cls.model_fields.items():
        kind = _extra(info, "env_type") or type_name(info.annotation)
        rows.append(f"| `{variable(cls, name, info)}` | {cell(kind)} | {cell(default(info))} "
                    f"| {cell(info.description or '')} |")
    return "\n".join(rows)


def caption(cls: type[BaseSettings]) -> str:
    first = (cls.__doc__ or cls.__name__).strip().split("\n\n")[0]
    return cell(first)


def render(text: str, specs: list[str], where: str = "README") -> str:
    """`text` with the generated table(s) between the markers."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise SystemExit(f"{where}: needs one {START} ... {END} pair")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    classes = [settings_class(spec) for spec in specs]
    # several classes: each under its docstring's first line
    body = table(classes[0]) if len(classes) == 1 else "\n\n".join(f"{caption(c)}\n\n{table(c)}" for c in classes)
    return f"{head}{START}\n<!-- generated by scripts/config_table.py from the settings class: edit the " \
           f"Field descriptions there, then run it -->\n{body}\n{END}{tail}"


def stale(root: Path = ROOT) -> list[str]:
    """The READMEs whose tables differ from what the settings classes say."""
    return [readme for readme, specs in TABLES.items()
            if (root / readme).read_text(encoding="utf-8") != render(
                (root / readme).read_text(encoding="utf-8"), specs, readme)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a table is stale")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for readme in out_of_date:
            print(f"{readme}: the settings table is stale; run python scripts/config_table.py", file=sys.stderr)
        return 1 if out_of_date else 0
    for readme, specs in TABLES.items():
        path = ROOT / readme
        text = path.read_text(encoding="utf-8")
        new = render(text, specs, readme)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"{readme}: updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
