"""Stage 2 checks: loading, cleaning, formatting, filtering and splitting real recipes.

Fixed inputs only: real Wikibooks recipes picked by title (ingredients as lists)
and rows of ``data/recipenlg_sample.csv`` (ingredients as JSON-encoded strings),
both read with the engine's own readers, so each check tests one function alone.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache

from checks.teacher import call, expect, fail
from lessons.engine.constants import END_MARKER
from lessons.engine.paths import DATA_DIR
from lessons.engine.recipes import read_recipenlg_csv, read_wikibooks

SAMPLE_CSV = DATA_DIR / "recipenlg_sample.csv"
FIXTURE = DATA_DIR / "fixtures" / "formatted_recipes.jsonl"

# Exactly what the fixed format makes of three real recipes: one from each source, one with markup.
PEACH_COBBLER = (  # Wikibooks: lists, HTML entities (&frac12;), exactly 3 ingredients
    "RECIPE: Peach Cobbler\n"
    "INGREDIENTS: 1 cup all-purpose flour; ½ cup butter; ¼ cup milk\n"
    "DIRECTIONS: Combine flour, butter, and milk. Cut together to make dough and set aside. Pour peaches in "
    "9x13-inch baking pan. Sprinkle sugar on top. Roll out crust and place on top of peaches. Bake at 350 °F or "
    "until top is browned lightly (approximately one hour).\n"
    "[END]")
MONTE_CRISTO = (  # Wikibooks: a <ref>…</ref> footnote at the end of a step
    "RECIPE: Monte Cristo Sandwich\n"
    "INGREDIENTS: Butter; 3 slices of white bread; Sliced lean baked ham; Sliced cooked chicken; Thinly-sliced "
    "Emmental cheese; Egg batter\n"
    "DIRECTIONS: Butter the first slice of bread and cover with ham and chicken. Butter the middle slice on both "
    "sides, place on meat, and cover with cheese. Butter the third slice and place, butter down, over cheese. Trim "
    "crusts, then cut sandwich in two and secure with toothpicks Dip in light egg batter, and fry in butter on all "
    "sides until golden brown. Remove toothpicks and serve with currant jelly, strawberry jam, or cranberry sauce.\n"
    "[END]")
MAC_AND_CHEESE = (  # RecipeNLG layout: JSON strings, &amp; in the title and the items
    "RECIPE: Mac & Cheese\n"
    "INGREDIENTS: 8 oz. elbow macaroni; 2 Tbsp. butter; 2 Tbsp. flour; 2 c. milk; 2 c. shredded cheddar & jack "
    "cheese; 1/2 tsp. dry mustard\n"
    "DIRECTIONS: Cook the macaroni in salted water until just tender; drain. Melt the butter in a saucepan, stir in "
    "the flour and cook 1 minute. Whisk in the milk and simmer until it thickens. Take off the heat, stir in the "
    "cheese & mustard, then the macaroni.\n"
    "[END]")
PEANUT_BUTTER_COOKIES = (  # RecipeNLG layout, exactly 3 ingredients
    "RECIPE: Peanut Butter Cookies\n"
    "INGREDIENTS: 1 c. peanut butter; 1 c. sugar; 1 egg\n"
    "DIRECTIONS: Heat the oven to 350°F. Mix everything into a dough and roll into 1-inch balls. Press each ball "
    "flat with a fork and bake 10 minutes.\n"
    "[END]")


@lru_cache(maxsize=None)
def _wikibooks() -> tuple[dict, ...]:
    return tuple(read_wikibooks("en"))


@lru_cache(maxsize=None)
def _sample() -> tuple[dict, ...]:
    return tuple(read_recipenlg_csv(SAMPLE_CSV))


def wikibooks(title: str) -> dict:
    """A fresh copy of the raw Wikibooks recipe with this title."""
    return copy.deepcopy(next(r for r in _wikibooks() if r["title"] == title))


def sample(title: str) -> dict:
    """A fresh copy of the first row of data/recipenlg_sample.csv with this title."""
    return copy.deepcopy(next(r for r in _sample() if r["title"] == title))


def mixed_recipes() -> list[dict]:
    """150 Wikibooks recipes (lists), the 13 sample rows (strings), and two recipes repeated."""
    first = [copy.deepcopy(r) for r in _wikibooks()[:150]]
    return first + [copy.deepcopy(r) for r in _sample()] + [copy.deepcopy(first[10]), copy.deepcopy(first[20])]


# -- loading ------------------------------------------------------------------------------
def test_load_recipes_keeps_the_mess(lesson):
    """load_recipes reads Wikibooks and RecipeNLG-layout CSVs as they are, mess included."""
    recipes = call(lesson.load_recipes, "wikibooks")
    expect(isinstance(recipes, list) and len(recipes) == 3129, lesson.load_recipes,
           "load_recipes('wikibooks') should give all 3,129 English recipes as a list.",
           expected="a list of 3129 dicts",
           got=f"{type(recipes).__name__} of {len(recipes) if hasattr(recipes, '__len__') else '?'}",
           hint="Which reader knows the embedded Wikibooks file, and which language does 'wikibooks' mean?")
    missing = {"title", "ingredients", "directions", "source"} - set(recipes[0])
    expect(not missing, lesson.load_recipes, f"each recipe needs these keys; missing {sorted(missing)}.",
           expected="title, ingredients, directions, source", got=sorted(recipes[0]))
    monte = next((r for r in recipes if r["title"] == "Monte Cristo Sandwich"), {})
    expect(any("<ref>" in step for step in monte.get("directions", [])), lesson.load_recipes,
           "the raw recipes must keep their mess: Monte Cristo Sandwich's last step has a <ref> footnote.",
           expected="the <ref>…</ref> still in the raw directions", got=monte.get("directions"),
           hint="Loading is for looking at the mess; which function cleans, later?")
    few = call(lesson.load_recipes, "wikibooks", limit=5)
    expect(len(few) == 5, lesson.load_recipes, "limit=5 should give 5 recipes.", expected=5, got=len(few),
           hint="Is limit passed on to the reader?")
    german = call(lesson.load_recipes, "wikibooks-de")
    expect(len(german) == 341, lesson.load_recipes, "'wikibooks-de' should give the 341 German recipes.",
           expected=341, got=len(german), hint="WIKIBOOKS_SOURCES maps each source name to its language.")
    rows = call(lesson.load_recipes, str(SAMPLE_CSV))
    expect(isinstance(rows, list) and len(rows) == 13, lesson.load_recipes,
           "a path to a RecipeNLG-layout CSV should give its rows (the sample has 13).",
           expected=13, got=len(rows) if hasattr(rows, "__len__") else rows,
           hint="Which reader takes a CSV path?")
    expect(isinstance(rows[1]["ingredients"], str) and rows[1]["title"] == "Mac &amp; Cheese", lesson.load_recipes,
           "RecipeNLG rows must stay raw: ingredients a JSON string, '&amp;' still in the title.",
           expected="'Mac &amp; Cheese' with ingredients as a str", got=(rows[1]["title"], rows[1]["ingredients"]))


# -- cleaning -----------------------------------------------------------------------------
def test_clean_text_removes_markup(lesson):
    """clean_text removes wiki markup and turns HTML entities back into characters."""
    caesar = wikibooks("Caesar Salad")["ingredients"][0]   # a <ref group="N">…</ref> with '''''quotes''''' inside
    rice_milk = wikibooks("Rice Milk")["directions"][1]     # 1–2&nbsp;minutes
    cases = [
        (caesar, "1 head Romaine lettuce, roughly chopped"),
        ("&frac12; cup butter", "½ cup butter"),
        ("Mac &amp; Cheese", "Mac & Cheese"),
        (rice_milk, "Blend until smooth, roughly 1–2 minutes"),
        ("Boil until ''al dente''.<ref name=\"bgf\" />", "Boil until al dente."),
        ("  2 cups\n water ", "2 cups water"),
        (None, ""),
    ]
    for raw, want in cases:
        got = call(lesson.clean_text, raw)
        expect(got == want, lesson.clean_text, f"cleaning {raw!r} gave something else.", expected=want, got=got,
               hint="Which step leaves this behind: the footnotes, the tags, the quotes, the entities or the spaces?")


def test_as_list_takes_every_shape(lesson):
    """as_list turns a list, a JSON-encoded list string and one-per-line text into the same clean list."""
    want = ["1 c. peanut butter", "1 c. sugar", "1 egg"]
    from_string = call(lesson.as_list, sample("Peanut Butter Cookies")["ingredients"])
    expect(not (isinstance(from_string, list) and from_string and all(len(item) <= 1 for item in from_string)),
           lesson.as_list, "the JSON string was taken apart character by character.", expected=want,
           got=from_string, hint="What does a for-loop over a str give you? How do you read the list inside it?")
    expect(from_string == want, lesson.as_list, "a RecipeNLG cell (a JSON-encoded list string) must give its items.",
           expected=want, got=from_string, hint="Which imported helper turns '[\"a\", \"b\"]' into ['a', 'b']?")
    for value in (want, "1 c. peanut butter\n1 c. sugar\n\n1 egg\n", json.dumps(want)):
        got = call(lesson.as_list, value)
        expect(got == want, lesson.as_list, f"the same three ingredients, given as {type(value).__name__}, "
               "should give the same list.", expected=want, got=got,
               hint="A list, a '[…]' string, and text with one item per line: which branch handles this one?")
    agar = wikibooks("Agar Jelly")["ingredients"]   # a real recipe with two empty items
    got = call(lesson.as_list, agar)
    expect(got == [item for item in agar if item], lesson.as_list, "empty items must be dropped.",
           expected=[item for item in agar if item], got=got, hint="Is an empty string an ingredient?")
    headed = ["2 eggs", "Optional:", "1 cup milk<ref>a note</ref>"]
    got = call(lesson.as_list, headed, drop_headers=True)
    expect(got == ["2 eggs", "1 cup milk"], lesson.as_list,
           "with drop_headers=True a section header ('Optional:') is not an item, and items are cleaned.",
           expected=["2 eggs", "1 cup milk"], got=got, hint="Does every item go through clean_text first?")
    got = call(lesson.as_list, headed)
    expect(got == ["2 eggs", "Optional:", "1 cup milk"], lesson.as_list,
           "without drop_headers, headers stay (directions keep 'Assemble in this order:').",
           expected=["2 eggs", "Optional:", "1 cup milk"], got=got)
    got = call(lesson.as_list, None)
    expect(got == [], lesson.as_list, "None means no items.", expected=[], got=got)
    got = call(lesson.as_list, "[optional] salt\n2 eggs")
    expect(got == ["[optional] salt", "2 eggs"], lesson.as_list,
           "a text that starts with '[' but is no list is still one item per line.",
           expected=["[optional] salt", "2 eggs"], got=got,
           hint="What does the list reader raise when the text is no list, and what do you do then?")


# -- formatting ---------------------------------------------------------------------------
def _text(lesson, example, problem: str = "it must return a dict with the formatted text under 'text'.") -> str:
    result = call(lesson.format_recipe, example)
    expect(isinstance(result, dict) and isinstance(result.get("text"), str), lesson.format_recipe, problem,
           expected="{'text': 'RECIPE: …'}", got=result,
           hint="dataset.map adds the keys of the returned dict as columns.")
    return result["text"]


def test_format_recipe_ends_with_end_marker(lesson):
    """format_recipe ends every recipe with the [END] line, so the model learns to stop."""
    for example in (wikibooks("Peach Cobbler"), sample("Mac &amp; Cheese")):
        text = _text(lesson, example)
        expect(text.endswith("\n" + END_MARKER), lesson.format_recipe, "the text must end with the [END] marker.",
               expected=f"text ending in '\\n{END_MARKER}'", got=text[-80:],
               hint="How will the model ever learn where a recipe stops?")
        expect(text.count(END_MARKER) == 1, lesson.format_recipe, "[END] must appear exactly once.",
               expected=1, got=text.count(END_MARKER))


def test_format_recipe_reads_like_a_recipe(lesson):
    """format_recipe joins ingredients with '; ', never printing Python's list brackets or quotes."""
    for example, ingredients in ((wikibooks("Peach Cobbler"), "1 cup all-purpose flour; ½ cup butter; ¼ cup milk"),
                                 (sample("Peanut Butter Cookies"), "1 c. peanut butter; 1 c. sugar; 1 egg")):
        text = _text(lesson, example)
        lines = text.split("\n")
        line = next((line for line in lines if line.startswith("INGREDIENTS: ")), "")
        expect(not any(mark in text for mark in ("['", "']", '["', '"]')), lesson.format_recipe,
               "the text shows Python's list brackets and quotes.", expected=f"INGREDIENTS: {ingredients}",
               got=line or text[:200], hint="What does str(['a', 'b']) look like? Which str method joins items?")
        expect(line == f"INGREDIENTS: {ingredients}", lesson.format_recipe,
               "the ingredients line should list the ingredients joined with '; '.",
               expected=f"INGREDIENTS: {ingredients}", got=line or text[:200],
               hint="Ingredients contain commas ('1 onion, chopped'): which separator does INGREDIENT_SEPARATOR hold?")


def test_format_recipe_wikibooks_lists(lesson):
    """format_recipe formats real Wikibooks recipes (lists) exactly, markup removed."""
    for title, want in (("Peach Cobbler", PEACH_COBBLER), ("Monte Cristo Sandwich", MONTE_CRISTO)):
        got = _text(lesson, wikibooks(title))
        expect(got == want, lesson.format_recipe, f"{title} is not in the fixed format.", expected=want, got=got,
               hint="Compare line by line: RECIPE, INGREDIENTS ('; '), DIRECTIONS (' '), then [END]. Any markup left?")
    by_title = {r["title"]: r for r in _wikibooks()}
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        got = _text(lesson, copy.deepcopy(by_title[row["title"]]))
        expect(got == row["text"], lesson.format_recipe,
               f"the Wikibooks recipe {row['title']!r} comes out differently from the fixed format.",
               expected=row["text"], got=got, hint="Are empty items dropped and every item cleaned?")


def test_format_recipe_leaves_section_headers_out(lesson):
    """format_recipe lists ingredients only: a section header such as 'Optional:' is not one."""
    got = _text(lesson, {"title": "Tea", "ingredients": ["1 teabag", "Optional:", "1 slice lemon", "1 cup water"],
                         "directions": ["Pour boiling water over the teabag and wait 4 minutes."]})
    line = next((row for row in got.splitlines() if row.startswith("INGREDIENTS:")), "")
    expect(line == "INGREDIENTS: 1 teabag; 1 slice lemon; 1 cup water", lesson.format_recipe,
           "a section header came out as an ingredient.", expected="INGREDIENTS: 1 teabag; 1 slice lemon; 1 cup water",
           got=line, hint="Which as_list option leaves headers out, and does format_recipe ask for it?")


def test_format_recipe_recipenlg_strings(lesson):
    """format_recipe formats RecipeNLG rows, whose ingredients are JSON strings, exactly."""
    text = _text(lesson, sample("Mac &amp; Cheese"))
    line = next((line for line in text.split("\n") if line.startswith("INGREDIENTS: ")), text[:200])
    expect('; "; ' not in line and not line.startswith("INGREDIENTS: [;"), lesson.format_recipe,
           "the ingredients string was walked through one character at a time.",
           expected=MAC_AND_CHEESE.split("\n")[1], got=line,
           hint="Here ingredients is a str holding a list: what does a for-loop over a str give you?")
    expect(not any(mark in line for mark in ("['", "']", '["', '"]')), lesson.format_recipe,
           "the ingredients line shows a list's brackets and quotes.", expected=MAC_AND_CHEESE.split("\n")[1],
           got=line, hint="What does str(['a', 'b']) look like? Which str method joins items?")
    entity = "&amp;" in text or "&#" in text
    expect(text == MAC_AND_CHEESE, lesson.format_recipe, "a RecipeNLG row is not in the fixed format.",
           expected=MAC_AND_CHEESE, got=text,
           hint="Is '&amp;' turned back into '&', in the title too?" if entity else
           "Compare them line by line: which line differs, and which of your steps made it?")
    text = _text(lesson, sample("Peanut Butter Cookies"))
    expect(text == PEANUT_BUTTER_COOKIES, lesson.format_recipe, "a RecipeNLG row is not in the fixed format.",
           expected=PEANUT_BUTTER_COOKIES, got=text)
    plain = {"title": "Peanut Butter Cookies", "ingredients": "1 c. peanut butter\n1 c. sugar\n1 egg\n",
             "directions": "Heat the oven to 350°F.\nMix everything into a dough and roll into 1-inch balls.\n"
                           "Press each ball flat with a fork and bake 10 minutes."}
    text = _text(lesson, plain)
    expect(text == PEANUT_BUTTER_COOKIES, lesson.format_recipe,
           "plain text with one item per line should give the same recipe.", expected=PEANUT_BUTTER_COOKIES,
           got=text, hint="Does format_recipe go through as_list for both ingredients and directions?")


# -- filtering ----------------------------------------------------------------------------
def _valid(lesson, example) -> bool:
    got = call(lesson.is_valid_recipe, example)
    expect(isinstance(got, bool) or type(got).__name__ == "bool_", lesson.is_valid_recipe,
           "it must answer True or False.", expected="True or False", got=got,
           hint="`a and b and c` gives back one of the values themselves: how do you get a plain bool?")
    return bool(got)


def test_is_valid_recipe_rules(lesson):
    """is_valid_recipe keeps recipes with at least 3 ingredients, real directions and a title."""
    keep = [("Peach Cobbler (Wikibooks, exactly 3 ingredients)", wikibooks("Peach Cobbler")),
            ("Peanut Butter Cookies (RecipeNLG, exactly 3 ingredients)", sample("Peanut Butter Cookies")),
            ("Monte Cristo Sandwich (Wikibooks)", wikibooks("Monte Cristo Sandwich"))]
    for name, example in keep:
        got = _valid(lesson, example)
        expect(got is True, lesson.is_valid_recipe, f"{name} is a good recipe but was rejected.",
               expected=True, got=got, hint="Is a recipe with exactly MIN_INGREDIENTS ingredients in or out?")
    drop = [("Affogato (Wikibooks, 2 ingredients)", wikibooks("Affogato"), "How many ingredients make a recipe?"),
            ("Buttered Toast (RecipeNLG, 2 ingredients in a string)", sample("Buttered Toast"),
             "Do you count the items of the list, or the characters of the string?"),
            ("Quick Tomato Salad (directions '[]')", sample("Quick Tomato Salad"),
             "How long is the text of an empty list of directions?"),
            ("Policy/Recipe template (directions 'Step one', 'Step two', 'etc.')",
             wikibooks("Policy/Recipe template"), "Are 22 characters of directions a real method?"),
            ("a recipe with a blank title", next(r for r in _sample() if not r["title"].strip()),
             "Is '   ' a real title once cleaned?"),
            ("2 ingredients plus a header", {"title": "Tea", "ingredients": ["1 teabag", "Optional:", "1 cup water"],
                                             "directions": ["Pour boiling water over the teabag and wait 4 minutes."]},
             "Is 'Optional:' an ingredient? Which as_list option leaves it out?")]
    for name, example, hint in drop:
        got = _valid(lesson, example)
        expect(got is False, lesson.is_valid_recipe, f"{name} should be rejected.", expected=False, got=got,
               hint=hint)


def test_recipe_checks_names_each_rule(lesson):
    """recipe_checks says, rule by rule, which test a recipe passes and which it fails."""
    got = call(lesson.recipe_checks, sample("Buttered Toast"))
    want = {lesson.RULE_TITLE: True, lesson.RULE_INGREDIENTS: False, lesson.RULE_DIRECTIONS: True}
    expect(got == want, lesson.recipe_checks, "Buttered Toast has a title and directions but only 2 ingredients.",
           expected=want, got=got, hint="One key per rule (RULE_TITLE, RULE_INGREDIENTS, RULE_DIRECTIONS).")
    got = call(lesson.recipe_checks, sample("Quick Tomato Salad"))
    want = {lesson.RULE_TITLE: True, lesson.RULE_INGREDIENTS: True, lesson.RULE_DIRECTIONS: False}
    expect(got == want, lesson.recipe_checks, "Quick Tomato Salad has no directions ('[]').", expected=want, got=got)


def test_recipe_checks_at_the_limits(lesson):
    """recipe_checks keeps a recipe exactly at each limit and rejects one just under it."""
    steps = "x" * lesson.MIN_DIRECTIONS_CHARS
    at_limit = {"title": "T", "ingredients": ["a", "b", "c"][:lesson.MIN_INGREDIENTS], "directions": [steps]}
    got = call(lesson.recipe_checks, at_limit)
    want = {lesson.RULE_TITLE: True, lesson.RULE_INGREDIENTS: True, lesson.RULE_DIRECTIONS: True}
    expect(got == want, lesson.recipe_checks, f"a one-letter title, {lesson.MIN_INGREDIENTS} ingredients and "
           f"{lesson.MIN_DIRECTIONS_CHARS} characters of directions are all just enough.", expected=want, got=got,
           hint="'At least' means >= : is the limit itself in or out?")
    under = dict(at_limit, directions=[steps[:-1]])
    got = call(lesson.recipe_checks, under)
    expect(got.get(lesson.RULE_DIRECTIONS) is False, lesson.recipe_checks,
           f"{lesson.MIN_DIRECTIONS_CHARS - 1} characters of directions are one too few.", expected=False,
           got=got.get(lesson.RULE_DIRECTIONS))


# -- splitting ----------------------------------------------------------------------------
def _needs_format_and_filter(lesson) -> None:
    """prepare_splits builds on format_recipe and is_valid_recipe: a wrong shape there is named there."""
    _text(lesson, wikibooks("Peach Cobbler"),
          "prepare_splits formats every recipe with your format_recipe, which must return {'text': ...} first.")
    _valid(lesson, wikibooks("Peach Cobbler"))


def _splits(lesson, recipes, n_recipes, test_size, seed):
    _needs_format_and_filter(lesson)
    splits = call(lesson.prepare_splits, recipes, n_recipes, test_size, seed)
    expect(hasattr(splits, "keys") and set(splits.keys()) == {"train", "validation"}, lesson.prepare_splits,
           "it must return a DatasetDict with exactly 'train' and 'validation'.",
           expected="DatasetDict({train: ..., validation: ...})", got=splits,
           hint="train_test_split names the held-out part 'test': what should it be called here?")
    for name in ("train", "validation"):
        columns = getattr(splits[name], "column_names", None)
        expect(columns is not None and {"title", "text"} <= set(columns), lesson.prepare_splits,
               f"the {name} split needs 'title' and 'text' columns.", expected=["title", "text"], got=columns,
               hint="Each row: the cleaned title and format_recipe(recipe)['text'].")
    return splits


def test_prepare_splits_shape(lesson):
    """prepare_splits gives train and validation splits of formatted recipes, sized as asked."""
    splits = _splits(lesson, mixed_recipes(), 60, 0.25, 0)
    sizes = (len(splits["train"]), len(splits["validation"]))
    expect(sizes == (45, 15), lesson.prepare_splits, "60 recipes with test_size=0.25 should split 45 / 15.",
           expected=(45, 15), got=sizes, hint="Are n_recipes and test_size both used?")
    for name in ("train", "validation"):
        for text in splits[name]["text"]:
            expect(text.startswith("RECIPE: ") and text.endswith(END_MARKER), lesson.prepare_splits,
                   f"every {name} text must be a formatted recipe.", expected="RECIPE: …\\n[END]", got=text[:120],
                   hint="Did every recipe go through format_recipe?")


def test_prepare_splits_of_two_recipes(lesson):
    """Two valid recipes are the fewest that split: one to train on, one to validate with."""
    splits = _splits(lesson, [wikibooks("Peach Cobbler"), wikibooks("Monte Cristo Sandwich")], None, 0.5, 0)
    sizes = (len(splits["train"]), len(splits["validation"]))
    expect(sizes == (1, 1), lesson.prepare_splits, "two recipes with test_size=0.5 should split 1 / 1.",
           expected=(1, 1), got=sizes, hint="How many recipes does a split really need: is 2 enough?")


def test_prepare_splits_filters_and_drops_duplicates(lesson):
    """prepare_splits drops invalid recipes and repeated titles (however they are written) before it splits."""
    mac = sample("Mac &amp; Cheese")
    written_differently = [{**copy.deepcopy(mac), "title": "mac & cheese"},        # the same dish, other case
                           {**copy.deepcopy(mac), "title": " MAC &amp; CHEESE "}]  # and with an HTML entity
    recipes = mixed_recipes() + written_differently
    splits = _splits(lesson, recipes, None, 0.2, 0)
    titles = list(splits["train"]["title"]) + list(splits["validation"]["title"])
    for bad in ("Affogato", "Buttered Toast", "Quick Tomato Salad", ""):
        if bad not in titles:
            continue
        raw = next(r for r in recipes if r["title"].strip() == bad)
        expect(not _valid(lesson, copy.deepcopy(raw)), lesson.is_valid_recipe,
               f"prepare_splits keeps what your is_valid_recipe lets through, and it lets {bad!r} through.",
               expected=False, got=True, hint="What does test_is_valid_recipe_rules say about it?")
        fail(lesson.prepare_splits, f"the invalid recipe {bad!r} made it into the splits.",
             expected="only recipes that pass is_valid_recipe", got=bad, hint="Is the filter the first step?")
    repeated = sorted({t for t in titles if titles.count(t) > 1})
    expect(not repeated, lesson.prepare_splits, "a title appears more than once.", expected="each title once",
           got=repeated, hint="Two 'Banana Oat Muffins' in the data: which one do you keep, and how do you know "
                               "you have seen a title before?")
    macs = [t for t in titles if t.casefold() == "mac & cheese"]
    expect(len(macs) == 1, lesson.prepare_splits,
           "one dish is in the splits several times under titles written differently.",
           expected="'Mac & Cheese' once", got=macs,
           hint="Are 'Mac &amp; Cheese' and 'mac & cheese' the same title? Which helper above says so?")
    expect(len(titles) == 153, lesson.prepare_splits,
           "of these 167 recipes, 9 are invalid and 5 repeat a title (2 of them written differently): "
           "153 should remain with n_recipes=None.",
           expected=153, got=len(titles), hint="n_recipes=None means every valid, unique recipe.")
    expect("Mac & Cheese" in titles, lesson.prepare_splits, "titles must be cleaned too.",
           expected="'Mac & Cheese'", got=macs, hint="clean_text(title)")


def test_prepare_splits_no_leak(lesson):
    """prepare_splits never puts the same recipe in both training and validation."""
    for seed in (0, 1):
        splits = _splits(lesson, mixed_recipes(), 80, 0.25, seed)
        both = sorted(set(splits["train"]["title"]) & set(splits["validation"]["title"]))
        expect(not both, lesson.prepare_splits, "these recipes are in training AND validation: a leak.",
               expected="no title in both splits", got=both,
               hint="Validation loss must measure recipes the model never trained on: is 'train' only the "
                    "train part of the split?")
        shared_text = set(splits["train"]["text"]) & set(splits["validation"]["text"])
        expect(not shared_text, lesson.prepare_splits, "the same text is in both splits.", expected="none",
               got=len(shared_text))
        total = len(splits["train"]) + len(splits["validation"])
        expect(total == 80, lesson.prepare_splits, "train and validation together should hold n_recipes.",
               expected=80, got=total, hint="Does a recipe end up in both, or in neither?")


def test_prepare_splits_is_random_but_repeatable(lesson):
    """prepare_splits with the same seed repeats itself, and picks a random subset, not the first recipes."""
    recipes = [copy.deepcopy(r) for r in _wikibooks()]
    first = _splits(lesson, recipes, 40, 0.25, 7)
    again = _splits(lesson, [copy.deepcopy(r) for r in _wikibooks()], 40, 0.25, 7)
    expect(list(first["validation"]["title"]) == list(again["validation"]["title"]), lesson.prepare_splits,
           "the same seed must give the same split.", expected=list(first["validation"]["title"]),
           got=list(again["validation"]["title"]), hint="Do the shuffle and the split both use seed?")
    other = _splits(lesson, [copy.deepcopy(r) for r in _wikibooks()], 40, 0.25, 8)
    expect(set(other["train"]["title"]) != set(first["train"]["title"]), lesson.prepare_splits,
           "another seed gave the very same recipes.", expected="a different random subset",
           got=sorted(other["train"]["title"])[:5], hint="Is the shuffle seeded with seed?")
    chosen = list(first["train"]["title"]) + list(first["validation"]["title"])
    by_letter = sum(title[:1].upper() in "AB" for title in chosen)
    expect(by_letter < len(chosen) // 2, lesson.prepare_splits,
           "most of the 40 recipes start with A or B: these are the first recipes, not a random subset.",
           expected="recipes from the whole alphabet", got=sorted(chosen)[:8],
           hint="Wikibooks is alphabetical: what must happen before you keep n_recipes of them?")


# -- show your work -----------------------------------------------------------------------
def test_data_mess_report(lesson):
    """data_mess_report counts the mess: types per field, markup, and why recipes are removed."""
    # data_mess_report is given (nothing to fill in); it counts with your recipe_checks, as_list and clean_text,
    # so a wrong count is reported on the function of yours that makes it.
    given = "data_mess_report (given, nothing to fill in) counts with your recipe_checks"
    for title, rules in (("Buttered Toast", (True, False, True)), ("Quick Tomato Salad", (True, True, False))):
        got = call(lesson.recipe_checks, sample(title))
        want = dict(zip((lesson.RULE_TITLE, lesson.RULE_INGREDIENTS, lesson.RULE_DIRECTIONS), rules))
        expect(got == want, lesson.recipe_checks, f"{given}, which gives another answer for {title}.",
               expected=want, got=got, hint="What does test_recipe_checks_names_each_rule say about it?")
    report = call(lesson.data_mess_report, [copy.deepcopy(r) for r in _sample()])
    expect(report.get("recipes") == 13 and report["fields"]["ingredients"]["types"] == {"str": 13},
           lesson.data_mess_report, "the sample's 13 ingredients cells are all strings.",
           expected={"str": 13}, got=report.get("fields", {}).get("ingredients"))
    want = {lesson.RULE_TITLE: 1, lesson.RULE_INGREDIENTS: 1, lesson.RULE_DIRECTIONS: 1, lesson.DUPLICATE: 1}
    expect(report["removed"] == want and report["kept"] == 9, lesson.recipe_checks,
           f"{given}: in the sample, one recipe fails each rule and one repeats a title; 9 should remain.",
           expected={"removed": want, "kept": 9}, got={"removed": report["removed"], "kept": report["kept"]},
           hint="Which rule does each rejected row of data/recipenlg_sample.csv fail with your recipe_checks?")
    report = call(lesson.data_mess_report, [copy.deepcopy(r) for r in _wikibooks()])
    expect(report["removed"][lesson.RULE_INGREDIENTS] == 116, lesson.recipe_checks,
           f"{given}: 116 Wikibooks recipes have fewer than 3 ingredients.", expected=116,
           got=report["removed"][lesson.RULE_INGREDIENTS],
           hint="Do empty items and headers count as ingredients in your as_list(..., drop_headers=True)?")
    expect(report["markup"]["<ref> footnotes"] == 20 and report["kept"] == 3011, lesson.recipe_checks,
           f"{given}: 20 Wikibooks recipes carry <ref> footnotes, and 3,011 pass the filter.",
           expected={"<ref> footnotes": 20, "kept": 3011},
           got={"<ref> footnotes": report["markup"]["<ref> footnotes"], "kept": report["kept"]},
           hint="Which recipes does your recipe_checks let through that it should not, or stop that it should "
                "let through?")
