"""Helpers shared by the contract tests (not a test module)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

import sandan_contracts
from sandan_contracts.schemas import SCHEMA_DIR

GOLDEN_DIR = Path(sandan_contracts.__file__).resolve().parent / "golden"
REPO_ROOT = Path(__file__).resolve().parents[2]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")

# jsonschema checks "date-time" only when rfc3339-validator is installed; check it ourselves so it is never skipped.
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    datetime.fromisoformat(value.replace("z", "Z"))
    return True


@cache
def committed_schema(topic: str, type_name: str, version: int) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / topic / f"{type_name}.v{version}.json").read_text("utf-8"))


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


def golden_files() -> list[Path]:
    return sorted(GOLDEN_DIR.glob("*.json"))
