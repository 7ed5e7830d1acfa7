"""The variables a service requires at start, read from its settings module: the `required("...")` calls of a
hand-written reader, and the fields without a default of a pydantic-settings class (their env names)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

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


def _fields(service: str) -> dict[str, Any]:
    """The settings class's fields by the variable each is read from."""
    settings = getattr(importlib.import_module(f"sandan_{service}.settings"), "Settings", None)
    if not (isinstance(settings, type) and issubclass(settings, BaseSettings)):
        return {}
    prefix = str(settings.model_config.get("env_prefix", ""))
    return {(field.validation_alias if isinstance(field.validation_alias, str) else f"{prefix}{name}".upper()): field
            for name, field in settings.model_fields.items()}


def variables(service: str) -> set[str]:
    """Every variable the service's settings read (required or not)."""
    text = (ROOT / "services" / service / "src" / f"sandan_{service}" / "settings.py").read_text(encoding="utf-8")
    return set(_fields(service)) | set(re.findall(r"""["']([A-Z][A-Z0-9]*_[A-Z0-9_]+)["']""", text))


def default_of(service: str, variable: str) -> str:
    """The default a service takes for `variable` when it is not set."""
    field = _fields(service).get(variable)
    if field is not None and not field.is_required():
        return str(field.default)
    text = (ROOT / "services" / service / "src" / f"sandan_{service}" / "settings.py").read_text(encoding="utf-8")
    (found,) = re.findall(rf"""optional\(\s*["']{variable}["']\s*,\s*["']([^"']+)["']""", text)
    return found
