"""The raw recipe readers (``lessons/engine/recipes.py``) and stage 2's ``load_recipes`` on top of them.

Everything here is offline: RecipeNLG is faked with small files in its exact
layout, and the Hugging Face datasets cache is pointed at a temporary folder.
"""
from __future__ import annotations

import json

import pytest

from lessons.engine import recipes as engine
from lessons.engine.errors import DatasetError, LabError
from lessons.engine.modules import load_stage_module
from lessons.engine.paths import DATA_DIR
from lessons.engine.recipes import parse_list_string, read_recipenlg_csv, read_recipenlg_hub, read_wikibooks

SAMPLE_CSV = DATA_DIR / "recipenlg_sample.csv"
HEADER = ",title,ingredients,directions,link,source,NER\n"
# Two rows as RecipeNLG's full_dataset.csv writes them (JSON lists inside CSV cells, quotes doubled).
REAL_LAYOUT = HEADER + (
    '0,No-Bake Nut Cookies,"[""1 c. firmly packed brown sugar"", ""1/2 c. evaporated milk"", ""1/2 tsp. vanilla""]",'
    '"[""In a heavy 2-quart saucepan, mix brown sugar, nuts, evaporated milk and butter."", ""Stir over medium '
    'heat.""]",www.cookbooks.com/Recipe-Details.aspx?id=44874,Gathered,"[""brown sugar"", ""milk"", ""vanilla""]"\n'
    '1,Jewell Ball\'S Chicken,"[""1 small jar chipped beef, cut up"", ""4 boned chicken breasts"", ""1 can cream of '
    'mushroom soup""]","[""Place chipped beef on bottom of baking dish."", ""Bake at 275\\u00b0 for 3 hours.""]",'
    'www.cookbooks.com/Recipe-Details.aspx?id=699419,Gathered,"[""beef"", ""chicken breasts""]"\n')


def write(tmp_path, text: str, name: str = "recipes.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture(scope="module")
def stage2():
    return load_stage_module("stage2", reference=True)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-datasets-cache"
    cache.mkdir()
    monkeypatch.setattr(engine, "_hf_datasets_cache", lambda: cache)
    monkeypatch.delenv(engine.RECIPENLG_DIR_ENV, raising=False)
    return cache


# -- Wikibooks ----------------------------------------------------------------------------
@pytest.mark.parametrize(("lang", "count"), [("en", 3129), ("de", 341), ("da", 156)])
def test_wikibooks_counts_and_shape(lang, count):
    recipes = read_wikibooks(lang)
    assert len(recipes) == count
    assert all({"id", "title", "ingredients", "directions", "source"} <= set(r) for r in recipes)
    assert all(isinstance(r["ingredients"], list) and isinstance(r["directions"], list) for r in recipes)
    assert {r["source"] for r in recipes} == {f"wikibooks-{lang}"}


def test_wikibooks_keeps_the_mess():
    recipes = read_wikibooks("en")
    items = lambda r: r["ingredients"] + r["directions"]  # noqa: E731
    assert sum(any("<ref" in item for item in items(r)) for r in recipes) == 20
    assert sum(len(r["ingredients"]) < 3 for r in recipes) == 116
    assert any("Optional:" in r["ingredients"] for r in recipes)
    assert any("" in r["ingredients"] for r in recipes)
    assert sum(r["category"] is None for r in recipes) == 2132
    assert any("&frac12;" in item for r in recipes for item in items(r))


def test_wikibooks_limit_and_order():
    first = read_wikibooks("en", limit=3)
    assert [r["title"] for r in first] == [r["title"] for r in read_wikibooks("en")[:3]]
    assert first[0]["id"].startswith("Cookbook:")
    assert read_wikibooks("en", limit=0) == []


# -- RecipeNLG CSV ------------------------------------------------------------------------
def test_sample_csv_is_recipenlg_layout_with_its_mess():
    first_line = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == HEADER.strip()
    rows = read_recipenlg_csv(SAMPLE_CSV)
    assert len(rows) == 13
    assert all(isinstance(r["ingredients"], str) and isinstance(r["directions"], str) for r in rows)
    titles = [r["title"] for r in rows]
    assert titles.count("Banana Oat Muffins") == 2
    assert any("&amp;" in t for t in titles)
    assert any(r["directions"] == "[]" for r in rows)
    assert any(len(parse_list_string(r["ingredients"])) == 2 for r in rows)
    assert [r["id"] for r in rows] == [str(i) for i in range(13)]


def test_real_layout_keeps_strings(tmp_path):
    rows = read_recipenlg_csv(write(tmp_path, REAL_LAYOUT))
    assert [r["title"] for r in rows] == ["No-Bake Nut Cookies", "Jewell Ball'S Chicken"]
    assert rows[0]["ingredients"].startswith('["1 c. firmly packed brown sugar"')
    assert rows[0]["source"] == "Gathered" and rows[0]["id"] == "0"
    assert parse_list_string(rows[1]["directions"])[1] == "Bake at 275° for 3 hours."


def test_layout_without_index_column_and_a_folder(tmp_path):
    no_index = "title,ingredients,directions\nToast,\"[\"\"bread\"\"]\",\"[\"\"Toast it.\"\"]\"\n"
    rows = read_recipenlg_csv(write(tmp_path, no_index))
    assert rows == [{"title": "Toast", "ingredients": '["bread"]', "directions": '["Toast it."]'}]
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "full_dataset.csv").write_text(REAL_LAYOUT, encoding="utf-8")
    assert len(read_recipenlg_csv(folder)) == 2
    assert len(read_recipenlg_csv(folder, limit=1)) == 1


def test_python_literal_lists_are_read_too():
    assert parse_list_string("['1 c. sugar', \"2 eggs\"]") == ["1 c. sugar", "2 eggs"]
    assert parse_list_string('["a", "b"]') == ["a", "b"]
    for broken in ('["a", "b"', "sugar, eggs", '{"a": 1}', "__import__('os')"):
        with pytest.raises(ValueError):
            parse_list_string(broken)


@pytest.mark.parametrize(("content", "encoding", "problem", "row"), [
    ("", "utf-8", "the file is empty", None),
    (HEADER, "utf-8", "no recipes", None),
    ("\n\n", "utf-8", "no header", 1),
    ("name;ingredients;steps\nToast;[];[]\n", "utf-8", "missing column(s) title, ingredients, directions", 1),
    (HEADER + '0,Crème brûlée,"[""cream""]","[""Bake.""]",,x,"[]"\n', "latin-1", "not UTF-8", 2),
    (HEADER + '0,Toast,"[""bread""]","[""Toast it.""]",,x,"[]"\n1,Tea,"[""tea""]","[""Steep.', "utf-8",
     "not valid CSV", 3),
    (HEADER + '0,Toast,"[""bread""]","[""Toast it.""]",,x\n', "utf-8", "6 cells but the header names 7", 2),
    (HEADER + '0,Toast,"[""bread""]","[""Toast it.""]",,x,"[]"\n1,Tea,"[""tea"", ""water""","[""Steep.""]",,x,"[]"\n',
     "utf-8", "the ingredients cell is not a JSON-encoded list", 3),
])
def test_bad_files_raise_dataset_error(tmp_path, content, encoding, problem, row):
    path = write(tmp_path, content, encoding=encoding)
    with pytest.raises(DatasetError) as caught:
        read_recipenlg_csv(path)
    error = caught.value
    assert problem in error.problem, error
    assert error.row == row, error
    assert str(path) in str(error)


def test_missing_path_says_what_to_pass(tmp_path):
    with pytest.raises(DatasetError) as caught:
        read_recipenlg_csv(tmp_path / "nope.csv")
    assert "no such file" in str(caught.value) and "wikibooks" in str(caught.value)
    with pytest.raises(DatasetError, match="full_dataset.csv"):
        read_recipenlg_csv(tmp_path)  # a folder without the file


# -- RecipeNLG through Hugging Face ---------------------------------------------------------
def test_hub_route_offline_says_what_to_pass(empty_hf_cache):
    with pytest.raises(LabError) as caught:
        read_recipenlg_hub()
    message = str(caught.value)
    assert "full_dataset.csv" in message and "load_recipes(" in message and engine.RECIPENLG_DIR_ENV in message


def test_hub_route_reads_a_named_folder(tmp_path, empty_hf_cache, monkeypatch):
    (tmp_path / "full_dataset.csv").write_text(REAL_LAYOUT, encoding="utf-8")
    assert len(read_recipenlg_hub(tmp_path)) == 2
    monkeypatch.setenv(engine.RECIPENLG_DIR_ENV, str(tmp_path))
    assert [r["title"] for r in read_recipenlg_hub(limit=1)] == ["No-Bake Nut Cookies"]


def test_hub_route_reuses_a_prepared_cache(empty_hf_cache, tmp_path):
    """A cache an older `datasets` prepared: lists, not strings, and source as a class label."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = Features({"id": Value("int32"), "title": Value("string"), "ingredients": Sequence(Value("string")),
                         "directions": Sequence(Value("string")), "link": Value("string"),
                         "source": ClassLabel(names=["Gathered", "Recipes1M"]), "ner": Sequence(Value("string"))})
    table = Dataset.from_list([
        {"id": 0, "title": "No-Bake Nut Cookies", "ingredients": ["1 c. brown sugar", "1/2 c. milk", "nuts"],
         "directions": ["Mix.", "Shape into clusters."], "link": "www.cookbooks.com", "source": 0,
         "ner": ["brown sugar", "milk"]},
        {"id": 1, "title": "Toast", "ingredients": ["bread"], "directions": ["Toast it."], "link": "", "source": 1,
         "ner": ["bread"]}], features=features)
    saved = tmp_path / "saved"
    table.save_to_disk(str(saved))
    target = empty_hf_cache / "mbien___recipe_nlg" / "default" / "1.0.0" / "abc123"
    target.mkdir(parents=True)
    next(saved.glob("*.arrow")).rename(target / "recipe_nlg-train.arrow")
    rows = read_recipenlg_hub()
    assert [r["title"] for r in rows] == ["No-Bake Nut Cookies", "Toast"]
    assert rows[0]["ingredients"] == ["1 c. brown sugar", "1/2 c. milk", "nuts"]
    assert [r["source"] for r in rows] == ["Gathered", "Recipes1M"]
    assert len(read_recipenlg_hub(limit=1)) == 1


# -- stage 2's load_recipes on top --------------------------------------------------------
def test_load_recipes_routes_every_source(stage2, empty_hf_cache):
    assert len(stage2.load_recipes("wikibooks")) == 3129
    assert len(stage2.load_recipes("Wikibooks-DA")) == 156
    assert len(stage2.load_recipes(SAMPLE_CSV)) == 13
    with pytest.raises(LabError, match="full_dataset.csv"):
        stage2.load_recipes("recipenlg")
    with pytest.raises(DatasetError, match="no such file"):
        stage2.load_recipes("wikipedia")


def test_both_shapes_give_the_same_recipe(stage2):
    as_lists = {"title": "Toast", "ingredients": ["bread", "butter", "salt"], "directions": ["Toast the bread well."]}
    as_strings = {"title": "Toast", "ingredients": json.dumps(as_lists["ingredients"]),
                  "directions": json.dumps(as_lists["directions"])}
    as_lines = {"title": "Toast", "ingredients": "bread\nbutter\nsalt", "directions": "Toast the bread well."}
    texts = {stage2.format_recipe(example)["text"] for example in (as_lists, as_strings, as_lines)}
    assert texts == {"RECIPE: Toast\nINGREDIENTS: bread; butter; salt\nDIRECTIONS: Toast the bread well.\n[END]"}


def test_prepare_splits_on_every_valid_wikibooks_recipe(stage2):
    recipes = stage2.load_recipes("wikibooks")
    report = stage2.data_mess_report(recipes)
    splits = stage2.prepare_splits(recipes, None, 0.1, 0)
    assert len(splits["train"]) + len(splits["validation"]) == report["kept"] == 3011
    assert not set(splits["train"]["title"]) & set(splits["validation"]["title"])
    assert all("<ref" not in text and "&frac" not in text for text in splits["train"]["text"])
