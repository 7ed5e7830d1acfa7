"""The README's topics table is the registry's."""

from __future__ import annotations

from contracts_support import REPO_ROOT

from sandan_contracts import TOPICS

README = REPO_ROOT / "contracts" / "README.md"
BEGIN, END = "<!-- topics:begin -->", "<!-- topics:end -->"


def topics_table() -> str:
    def retention(ms: int) -> str:
        return "forever (-1)" if ms == -1 else f"{ms // 86_400_000} days"

    rows = ["| topic | owner (only writer) | key | partitions | retention | dead letters | events |",
            "|---|---|---|---|---|---|---|"]
    for t in TOPICS.values():
        key = ", ".join(f"`{k.strip()}`" for k in t.key.split("|"))
        dlq = f"`{t.dead_letter}`" if t.dead_letter else "—"
        rows.append(f"| `{t.name}` | {t.owner} | {key} | {t.partitions} | {retention(t.retention_ms)} | {dlq} | "
                    f"{', '.join(t.events) or '—'} |")
    return "\n".join(rows)


def test_readme_topics_table_matches_the_registry() -> None:
    text = README.read_text("utf-8")
    table = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    expected = topics_table()
    assert table == expected, f"update contracts/README.md between the topics markers to:\n{expected}"
