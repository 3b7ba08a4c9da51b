"""The fixed inputs of the learner checks are what the reference stage 2 makes of real recipes.

``data/fixtures/formatted_recipes.jsonl`` feeds the checks of stages 3 to 6, so
a mistake in a learner's stage 2 never fails a later stage. These tests prove
that every line is still exactly the reference ``format_recipe`` of the
Wikibooks recipe with that title. After changing the reference's cleaning,
rewrite the texts (same titles, same order) with::

    python -m tests.test_fixtures --write
"""
from __future__ import annotations

import json
import sys

import pytest

from lessons.engine.constants import END_MARKER
from lessons.engine.modules import load_stage_module
from lessons.engine.paths import DATA_DIR

FIXTURE = DATA_DIR / "fixtures" / "formatted_recipes.jsonl"
ROWS = 48  # other stages' checks count on this many


def fixture_rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stage2():
    return load_stage_module("stage2", reference=True)


@pytest.fixture(scope="module")
def wikibooks_by_title(stage2):
    return {recipe["title"]: recipe for recipe in stage2.load_recipes("wikibooks")}


def test_fixture_shape():
    rows = fixture_rows()
    assert len(rows) == ROWS
    assert all(set(row) == {"title", "text"} for row in rows)
    assert len({row["title"] for row in rows}) == ROWS, "a title appears twice"
    for row in rows:
        assert row["text"].startswith(f"RECIPE: {row['title']}\nINGREDIENTS: ")
        assert row["text"].endswith("\n" + END_MARKER)
        assert row["text"].count(END_MARKER) == 1


def test_fixture_is_the_reference_format_of_real_recipes(stage2, wikibooks_by_title):
    for row in fixture_rows():
        recipe = wikibooks_by_title.get(row["title"])
        assert recipe is not None, f"{row['title']!r} is not an embedded Wikibooks recipe"
        assert stage2.is_valid_recipe(recipe), f"{row['title']!r} does not pass the reference filter"
        assert stage2.format_recipe(recipe)["text"] == row["text"], (
            f"{row['title']!r} is formatted differently now: run python -m tests.test_fixtures --write")


def test_fixture_has_no_markup_left():
    for row in fixture_rows():
        for mess in ("<ref", "</", "&amp;", "&frac", "&nbsp;", "''", "[[", "['", "']"):
            assert mess not in row["text"], f"{row['title']!r} still holds {mess!r}"


def write_fixture() -> None:
    """Rewrite the texts from the reference, keeping the titles and their order."""
    stage2 = load_stage_module("stage2", reference=True)
    recipes = {recipe["title"]: recipe for recipe in stage2.load_recipes("wikibooks")}
    lines = []
    for row in fixture_rows():
        text = stage2.format_recipe(recipes[row["title"]])["text"]
        lines.append(json.dumps({"title": row["title"], "text": text}, ensure_ascii=False))
    FIXTURE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} recipes to {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_fixture()
    else:
        print(__doc__)
