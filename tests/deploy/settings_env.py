"""The variables a service requires at start, read from its settings module: the `required("...")` calls of a
hand-written reader, and the fields without a default of a pydantic-settings class (their env names)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]


def required_variables(service: str) -> set[str]:
    text = (ROOT / "services" / service / "src" / f"sandan_{service}" / "settings.py").read_text(encoding="utf-8")
    found = set(re.findall(r"""\brequired\(\s*["']([A-Z0-9_]+)["']""", text))
    settings = getattr(importlib.import_module(f"sandan_{service}.settings"), "Settings", None)
    if isinstance(settings, type) and issubclass(settings, BaseSettings):
        prefix = str(settings.model_config.get("env_prefix", ""))
        for name, field in settings.model_fields.items():
            if field.is_required():
                alias = field.validation_alias if isinstance(field.validation_alias, str) else None
                found.add(alias or f"{prefix}{name}".upper())
    return found
