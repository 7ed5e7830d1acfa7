"""Message templates are files: `templates/<language>/<template>.txt`, Chinese (zh) by default, English (en).

First line: the subject (e-mail subject, WeChat title); the rest: the body. Placeholders `{name}` are filled
from the notice's parameters plus what is known at send time (the recipient's name, the member's name); an
unknown placeholder renders as "-". Times (`*_at`) are shown in local time; levels and scopes get a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"

_LABELS = {
    "zh": {"community": "社区党组织", "town": "乡镇党委", "county": "县委组织部", "unit": "单位"},
    "en": {"community": "community branch", "town": "town committee", "county": "county office", "unit": "unit"},
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


class _Params(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "-"


@cache
def _load(language: str, template: str) -> tuple[str, str]:
    path = TEMPLATE_DIR / language / f"{template}.txt"
    text = path.read_text(encoding="utf-8").strip()
    subject, _, body = text.partition("\n")
    return subject.strip(), body.strip()


def available(language: str) -> list[str]:
    return sorted(p.stem for p in (TEMPLATE_DIR / language).glob("*.txt"))


def local_time(value: str, offset: timedelta) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return (moment + offset).strftime("%Y-%m-%d %H:%M")


def render(template: str, params: dict[str, str], language: str = DEFAULT_LANGUAGE,
           offset: timedelta = timedelta(hours=8)) -> Rendered:
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    try:
        subject, body = _load(language, template)
    except FileNotFoundError:
        subject, body = _load(DEFAULT_LANGUAGE, template)
    values = _Params(params)
    labels = _LABELS[language]
    for key, value in params.items():
        if key.endswith("_at") and value:
            values[key] = local_time(value, offset)
        if key in ("level", "from_level", "to_level", "scope"):
            values[f"{key}_label"] = labels.get(value, value)
    if not values.get("name"):
        values["name"] = "您" if language == "zh" else "there"
    return Rendered(subject.format_map(values), body.format_map(values))
