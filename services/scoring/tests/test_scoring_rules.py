"""Rule sets are data: the packaged files load, broken files are refused, and the numbers mean what they say."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sandan_scoring.rules import PACKAGED, RuleBook, RuleError, RuleSet


def packaged(version: str) -> dict[str, Any]:
    return json.loads((PACKAGED / f"{version}.json").read_text("utf-8"))


# ---- loading ---------------------------------------------------------------------------------------------
def test_both_packaged_rule_sets_load(rulebook: RuleBook) -> None:
    assert set(rulebook.sets) >= {"2026.1", "2026.2"}
    first, second = rulebook.get("2026.1"), rulebook.get("2026.2")
    assert first.version == "2026.1" and first.description
    assert first.per_hour == 4 and second.per_hour == 5
    assert first.special_care_bonus == 6 and second.special_care_bonus == 12
    assert first.activity_check_in == 8 and second.activity_check_in == 5
    assert (first.abandoned_order, first.overdue_while_held, first.redo_required) == (6, 4, 5)
    assert first.min_rated_services == 3
    # levels are kept highest first, whatever order the file lists them in
    assert [lv.stars for lv in first.star_levels] == [5, 4, 3, 2, 1]
    assert rulebook.latest().version == "2026.2"


def test_levels_are_sorted_highest_first_whatever_the_file_order() -> None:
    raw = packaged("2026.1")
    raw["stars"]["levels"].reverse()
    ruleset = RuleSet.from_dict(raw)
    assert [lv.stars for lv in ruleset.star_levels] == [5, 4, 3, 2, 1]
    assert ruleset.stars_for(150, 4.9, 3) == 5


def test_unknown_version_is_a_rule_error_naming_the_known_ones(rulebook: RuleBook) -> None:
    with pytest.raises(RuleError, match=r"2099\.1.*2026\.1, 2026\.2"):
        rulebook.get("2099.1")


def test_an_extra_directory_adds_a_county_rule_set(tmp_path: Path) -> None:
    raw = packaged("2026.1")
    raw["version"] = "taihe-2026.3"
    raw["points"]["per_hour"] = 6
    (tmp_path / "taihe.json").write_text(json.dumps(raw), "utf-8")
    book = RuleBook(tmp_path)
    assert book.get("taihe-2026.3").per_hour == 6
    assert book.get("2026.1").per_hour == 4  # the packaged ones are still there


def _without(path: str) -> dict[str, Any]:
    raw = packaged("2026.1")
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    del node[leaf]
    return raw


def _with(path: str, value: Any) -> dict[str, Any]:
    raw = packaged("2026.1")
    *parents, leaf = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    node[leaf] = value
    return raw


@pytest.mark.parametrize("raw", [
    pytest.param(_without("version"), id="no-version"),
    pytest.param(_without("points"), id="no-points"),
    pytest.param(_without("penalties"), id="no-penalties"),
    pytest.param(_without("stars"), id="no-stars"),
    pytest.param(_without("points.per_hour"), id="no-per-hour"),
    pytest.param(_without("penalties.redo_required"), id="no-redo"),
    pytest.param(_without("stars.min_rated_services"), id="no-min-rated"),
    pytest.param(_without("points.service_completed.default"), id="no-default-category"),
    pytest.param(_with("points.per_hour", "four"), id="per-hour-not-a-number"),
    pytest.param(_with("points.five_star_bonus", None), id="bonus-null"),
    pytest.param(_with("stars.levels", [{"stars": 6, "min_points": 1, "min_average_rating": 1}]), id="six-stars"),
    pytest.param(_with("stars.levels", [{"stars": 0, "min_points": 1, "min_average_rating": 1}]), id="zero-stars"),
    pytest.param(_with("stars.levels", [{"stars": 3, "min_points": 1}]), id="level-without-rating"),
    pytest.param(_with("stars.levels", 5), id="levels-not-a-list"),
    pytest.param(_with("points.service_completed", {"default": "ten"}), id="category-points-not-a-number"),
    pytest.param([], id="not-an-object"),
])
def test_invalid_rule_sets_are_rule_errors(raw: Any) -> None:
    with pytest.raises(RuleError):
        RuleSet.from_dict(raw)


def test_service_completed_not_an_object_is_a_rule_error() -> None:
    with pytest.raises(RuleError):
        RuleSet.from_dict(_with("points.service_completed", 10))


def test_an_invalid_file_in_the_extra_directory_is_refused_at_load(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text(json.dumps(_without("points.service_completed.default")), "utf-8")
    with pytest.raises(RuleError, match="default"):
        RuleBook(tmp_path)


def test_a_file_that_is_not_json_is_a_rule_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "county.json").write_text("{ not json", "utf-8")
    with pytest.raises(RuleError, match=r"county\.json"):
        RuleBook(tmp_path)


# ---- stars -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("points", "average", "rated", "stars"), [
    (150, 4.8, 3, 5),  # exactly the 5-star thresholds
    (149, 4.8, 3, 4),  # one point short of 5 stars: the 4-star level
    (150, 4.79, 3, 4),  # rating just short of 5 stars
    (1000, 4.5, 10, 4),
    (100, 4.5, 3, 4),
    (99, 5.0, 3, 3),
    (60, 4.2, 3, 3),
    (59, 4.2, 3, 2),
    (30, 3.8, 3, 2),
    (30, 3.79, 3, 1),
    (10, 3.0, 3, 1),
    (9, 5.0, 3, 0),  # too few points for any star
    (500, 2.99, 3, 0),  # a poor rating makes no star member, however many points
    (-20, 5.0, 3, 0),
])
def test_stars_follow_the_thresholds(rules: RuleSet, points: int, average: float, rated: int, stars: int) -> None:
    assert rules.stars_for(points, average, rated) == stars


@pytest.mark.parametrize("rated", [0, 1, 2])
def test_too_few_rated_services_give_no_stars(rules: RuleSet, rated: int) -> None:
    """A single (or two) 5-star reviews cannot make a star member, whatever the points."""
    assert rules.stars_for(10_000, 5.0, rated) == 0
    assert rules.stars_for(10_000, 5.0, 3) == 5


def test_no_average_rating_means_no_stars(rules: RuleSet) -> None:
    assert rules.stars_for(10_000, None, 5) == 0


def test_stars_thresholds_differ_between_versions(rulebook: RuleBook) -> None:
    assert rulebook.get("2026.1").stars_for(150, 4.9, 3) == 5
    assert rulebook.get("2026.2").stars_for(150, 4.9, 3) == 4


# ---- points ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("hours", "points"), [
    (2.5, 10),
    (1.0, 4),
    (0.1, 0),  # 0.4 rounds to 0
    (0.2, 1),  # 0.8 rounds to 1
    (0.4, 2),  # 1.6 rounds to 2
    (8.0, 32),
    (10.0, 32),  # capped at max_hours_per_service (8)
    (72.0, 32),
])
def test_hours_points_are_capped_and_rounded(rules: RuleSet, hours: float, points: int) -> None:
    assert rules.hours_points(hours) == points


def test_hours_points_cap_and_rate_follow_the_version(rulebook: RuleBook) -> None:
    second = rulebook.get("2026.2")
    assert second.hours_points(2.0) == 10
    assert second.hours_points(24.0) == 40


def test_completed_points_by_category_with_a_default(rules: RuleSet) -> None:
    assert rules.completed_points("medical") == 12
    assert rules.completed_points("legal") == 12
    assert rules.completed_points("policy") == 8
    assert rules.completed_points("information") == 6
    assert rules.completed_points("environment") == 10  # not listed: the default
    assert rules.completed_points("traffic") == 10


def test_a_rule_set_is_data_changing_a_copy_changes_the_numbers() -> None:
    raw = copy.deepcopy(packaged("2026.1"))
    raw["version"] = "what-if"
    raw["points"]["service_completed"]["default"] = 3
    raw["stars"]["min_rated_services"] = 1
    ruleset = RuleSet.from_dict(raw)
    assert ruleset.completed_points("environment") == 3
    assert ruleset.stars_for(150, 5.0, 1) == 5
