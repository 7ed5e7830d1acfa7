"""docs/subscribing.md agrees with the registry and the contract it describes."""

from __future__ import annotations

import re
from pathlib import Path

from sandan_contracts import EVENT_TYPES, TOPICS
from sandan_contracts.cloudevents import ce_type

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "subscribing.md"
BEGIN, END = "<!-- topics:begin -->", "<!-- topics:end -->"


def topics_table() -> str:
    rows = ["| topic | written by | key (ordering) | partitions | retention | dead letters | `ce_type` prefix "
            "| events |",
            "|---|---|---|---|---|---|---|---|"]
    for t in TOPICS.values():
        if not t.dead_letter:
            continue
        key = ", ".join(f"`{k.strip()}`" for k in t.key.split("|"))
        retention = "forever" if t.retention_ms < 0 else f"{t.retention_ms // 86_400_000} days"
        types = sorted(ce_type(t.name, cls.TYPE, cls.VERSION) for cls in EVENT_TYPES.values() if t.name == cls.TOPIC)
        family = types[0].rsplit(".", 2)[0]
        names = ", ".join(s.removeprefix(family + ".") for s in types)
        rows.append(f"| `{t.name}` | {t.owner} | {key} | {t.partitions} | {retention} | `{t.dead_letter}` | "
                    f"`{family}.` | {names} |")
    return "\n".join(rows)


def test_the_topics_table_is_the_registry() -> None:
    table = DOC.read_text("utf-8").split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = topics_table()
    assert table == expected, f"update docs/subscribing.md between the topics markers to:\n{expected}"


def test_every_file_it_names_exists() -> None:
    named = set(re.findall(r"\]\((\.\./[^)#]+)\)", DOC.read_text("utf-8")))
    assert named
    for rel in named:
        assert (DOC.parent / rel).resolve().exists(), rel
