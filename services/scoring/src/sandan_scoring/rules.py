"""Points rules as versioned data (JSON files), not code.

A rule set names its version; every ledger entry records the version it was computed under. The files in
`rules/` are packaged; `SCORING_RULES_DIR` adds more (a county's own), and `SCORING_RULE_SET` picks the active one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandan_eventbus.checks import quote

PACKAGED = Path(__file__).parent / "rules"


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class StarLevel:
    stars: int
    min_points: int
    min_average_rating: float


@dataclass(frozen=True)
class RuleSet:
    version: str
    description: str
    completed_by_category: dict[str, int]
    per_hour: float
    max_hours_per_service: float
    five_star_bonus: int
    special_care_bonus: int
    activity_check_in: int
    abandoned_order: int
    overdue_while_held: int
    redo_required: int
    min_rated_services: int
    star_levels: tuple[StarLevel, ...]

    def completed_points(self, category: str) -> int:
        return self.completed_by_category.get(category, self.completed_by_category["default"])

    def hours_points(self, hours: float) -> int:
        return round(min(hours, self.max_hours_per_service) * self.per_hour)

    def stars_for(self, points: int, average_rating: float | None, rated_services: int) -> int:
        """Stars need enough rated services, so a single 5-star review cannot make a star member."""
        if rated_services < self.min_rated_services or average_rating is None:
            return 0
        for level in self.star_levels:  # highest first
            if points >= level.min_points and average_rating >= level.min_average_rating:
                return level.stars
        return 0

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RuleSet:
        try:
            points, penalties, stars = raw["points"], raw["penalties"], raw["stars"]
            levels = tuple(sorted((StarLevel(int(lv["stars"]), int(lv["min_points"]),
                                             float(lv["min_average_rating"])) for lv in stars["levels"]),
                                  key=lambda lv: -lv.stars))
            ruleset = cls(
                version=str(raw["version"]),
                description=str(raw.get("description", "")),
                completed_by_category={str(k): int(v) for k, v in points["service_completed"].items()},
                per_hour=float(points["per_hour"]),
                max_hours_per_service=float(points["max_hours_per_service"]),
                five_star_bonus=int(points["five_star_bonus"]),
                special_care_bonus=int(points["special_care_bonus"]),
                activity_check_in=int(points["activity_check_in"]),
                abandoned_order=int(penalties["abandoned_order"]),
                overdue_while_held=int(penalties["overdue_while_held"]),
                redo_required=int(penalties["redo_required"]),
                min_rated_services=int(stars["min_rated_services"]),
                star_levels=levels,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RuleError(f"invalid rule set: {exc!r}") from exc
        if "default" not in ruleset.completed_by_category:
            raise RuleError("points.service_completed needs a 'default'")
        if not all(1 <= lv.stars <= 5 for lv in levels):
            raise RuleError("star levels must be 1..5")
        penalties_and_bonuses = (ruleset.per_hour, ruleset.five_star_bonus, ruleset.special_care_bonus,
                                 ruleset.activity_check_in, ruleset.abandoned_order, ruleset.overdue_while_held,
                                 ruleset.redo_required, *ruleset.completed_by_category.values())
        if any(v < 0 for v in penalties_and_bonuses):
            raise RuleError("points and penalties are amounts: none may be negative")
        return ruleset


class RuleBook:
    """Every rule set known, by version."""

    def __init__(self, extra_dir: Path | None = None) -> None:
        self.sets: dict[str, RuleSet] = {}
        for directory in (PACKAGED, extra_dir):
            if directory is None:
                continue
            for path in sorted(directory.glob("*.json")):
                try:
                    ruleset = RuleSet.from_dict(json.loads(path.read_text("utf-8")))
                except (ValueError, RuleError) as exc:  # JSONDecodeError is a ValueError
                    raise RuleError(f"{path}: {exc}") from exc
                self.sets[ruleset.version] = ruleset

    def get(self, version: str) -> RuleSet:
        try:
            return self.sets[version]
        except KeyError:
            raise RuleError(f"unknown rule set {quote(version)!r}; known: {', '.join(sorted(self.sets))}") from None

    def latest(self) -> RuleSet:
        return self.sets[max(self.sets)]
