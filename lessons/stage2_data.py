"""Stage 2 — The data mess: load, format, filter, split.

A model learns exactly what its training text shows it, mistakes included. So
before any training: look at the data. Real data is always messy, and every
source is messy in its own way. The two you meet here:

* **Wikibooks** (embedded, 3,129 English recipes; German and Danish too):
  ingredients and directions are proper Python *lists*, but the items carry
  wiki markup: ``<ref>…</ref>`` footnotes in 20 recipes, ``''italics''`` or
  ``[[links]]`` in 128, ``<nowiki/>`` and other tags in 13, and HTML entities
  such as ``&frac12;`` in 55. 116 recipes have fewer than 3 ingredients (a
  drink, a garnish, a broken page); in 9, section headers pose as ingredients
  ("Optional:"); one recipe has empty items; one page is the wiki's own
  *template* ("Step one", "Step two", "etc."); and most category, time and
  servings fields are ``None``. The filter below keeps 3,011.
* **RecipeNLG** (2.2 million recipes, a separate download): ingredients and
  directions are *strings* that hold a JSON-encoded list,
  ``'["1 c. sugar", "2 eggs"]'``. Loop over that and you get characters, not
  ingredients. Titles and items carry HTML entities (``Mac &amp; Cheese``).
  ``data/recipenlg_sample.csv`` is a small file in its layout, with its mess.

What you build, in order:

1. ``load_recipes`` — read the raw recipes, mess preserved (look before you clean);
2. ``as_list`` and ``clean_text`` — one clean list of strings, whatever shape came in;
3. ``format_recipe`` — every recipe in one fixed format::

       RECIPE: Pancakes
       INGREDIENTS: 1 cup flour; 1 egg; 1 cup milk
       DIRECTIONS: Whisk everything. Fry in a hot pan.
       [END]

   A *fixed* format is what the model learns: after ``INGREDIENTS:`` come
   ingredients, after ``DIRECTIONS:`` come steps. At generation time we start
   the pattern (``RECIPE: Tomato Soup\\nINGREDIENTS:``) and the model continues
   it. The ``[END]`` line teaches it to *stop*: without it, a model keeps
   writing a second recipe, then a third, because nothing in its training text
   ever ended.
4. ``recipe_checks`` and ``is_valid_recipe`` — keep only recipes worth learning from;
5. ``prepare_splits`` — filter, drop duplicate titles, pick a random subset,
   format, and split into *train* and *validation*.

Why a validation split: training loss always goes down, because the model sees
those very recipes again and again; it may just be memorising them. Loss on
recipes it has *never* trained on tells whether it learned recipes in general.
That only works if no validation recipe also sits in the training split (a
*leak*): a leaked recipe makes validation loss look better than the model is.
The same recipe twice in the data (two "Banana Oat Muffins") leaks just as
surely, which is why duplicate titles go before the split.

``data_mess_report`` shows your work: what each field holds, how much markup,
and how many recipes the filter removes and why. The dashboard charts it.

Fill in the TODOs and blanks, top to bottom, then run ``.venv/bin/python -m pytest checks/stage2``
in the project folder.
"""
from __future__ import annotations

import html
import random
import re
import statistics
from collections import Counter
from pathlib import Path

from datasets import Dataset, DatasetDict

from lessons.engine.constants import END_MARKER, RECIPE_TEMPLATE  # noqa: F401 - END_MARKER ends RECIPE_TEMPLATE
from lessons.engine.recipes import (WIKIBOOKS_SOURCES, parse_list_string, read_recipenlg_csv, read_recipenlg_hub,
                                    read_wikibooks)
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

MIN_INGREDIENTS = 3        # fewer is usually a drink, a garnish or a broken page, not a recipe to imitate
MIN_DIRECTIONS_CHARS = 25  # "Step one Step two etc." (a template page) and "Combine all ingredients." teach no method
INGREDIENT_SEPARATOR = "; "  # ingredients contain commas ("1 onion, chopped"), so a comma cannot separate them
DIRECTION_SEPARATOR = " "    # directions are sentences: a space makes them one paragraph

# The rules a recipe must pass, by name (the dashboard shows how many recipes fail each).
RULE_TITLE = "a real title"
RULE_INGREDIENTS = f"at least {MIN_INGREDIENTS} ingredients"
RULE_DIRECTIONS = "real directions"
DUPLICATE = "duplicate title"

# Wiki and HTML markup: formatting for a web page, not words of a recipe.
REF_FOOTNOTE = re.compile(r"<ref[^>]*/>|<ref[^>]*>.*?</ref>", re.IGNORECASE | re.DOTALL)  # <ref>source</ref>
HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")                 # <nowiki/>, <u>, <br>, <bdi>; "<7" is not a tag
WIKI_LINK = re.compile(r"\[\[(?:[^\]|]*\|)?([^\]|]*)\]\]")   # [[Cookbook:Bean|beans]] -> beans
WIKI_QUOTES = re.compile(r"'{2,}")                           # ''italic'' and '''bold'''
HTML_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+\d*);")  # &amp; &frac12; &#39;
SECTION_HEADER_RAW = re.compile(r':\s*$|:"\s*[,\]]', re.MULTILINE)  # "Optional:" as an item, a line or in a JSON list


def load_recipes(source: str = "wikibooks", limit: int | None = None) -> list[dict]:
    """Read recipes exactly as the source has them: a list of dicts, mess preserved.

    Args:
        source: ``"wikibooks"`` (English, embedded), ``"wikibooks-de"``,
            ``"wikibooks-da"``, a path to a CSV in RecipeNLG's layout (such as
            ``data/recipenlg_sample.csv`` or the downloaded ``full_dataset.csv``),
            or ``"recipenlg"`` (a RecipeNLG this machine already has; the
            error says what to pass when it has none).
        limit: read only the first ``limit`` recipes (``None``: all). Wikibooks
            is alphabetical, so the first 100 all start with "A".

    Every dict has ``title``, ``ingredients``, ``directions`` and ``source``;
    nothing is cleaned yet: we look at the mess before we clean it.

    Example:
        >>> load_recipes("wikibooks", limit=1)[0]["ingredients"][:2]
        ['1 ½ lemons, juiced', '1 cup freshly grated Parmesan cheese']
        >>> load_recipes("data/recipenlg_sample.csv", limit=1)[0]["ingredients"][:30]
        '["1 whole chicken (about 4 lb.)'
    """
    name = str(source).strip()
    if name.lower() in WIKIBOOKS_SOURCES:
        return ___(WIKIBOOKS_SOURCES[name.lower()], limit=limit)  # TODO: fill in ___ — which reader of lessons.engine.recipes reads the embedded Wikibooks recipes?
    if name.lower() == "recipenlg":
        return read_recipenlg_hub(limit=limit)
    return ___(Path(name), limit=limit)  # TODO: fill in ___ — which reader takes a path to a RecipeNLG-layout CSV?


def clean_text(text) -> str:
    """One piece of text without wiki markup or HTML entities, its spaces tidied.

    Steps: drop ``<ref>`` footnotes (with what is inside them), then any other
    tag, keep only the words of a wiki link, drop ``''`` italics quotes, turn
    HTML entities back into characters (``&amp;`` → ``&``, ``&frac12;`` → ``½``),
    and collapse runs of spaces and line breaks into one space.

    Example:
        >>> clean_text("2 cups ''rougag''<ref>see the notes</ref>  &amp; salt ")
        '2 cups rougag & salt'
        >>> clean_text(None)
        ''
    """
    if text is None:
        return ""
    text = REF_FOOTNOTE.sub("", str(text))
    text = HTML_TAG.sub("", text)
    text = WIKI_LINK.sub(r"\1", text)
    text = WIKI_QUOTES.sub("", text)
    text = ___(text)  # TODO: fill in ___ — which function of Python's html module turns "&amp;" back into "&"?
    return " ".join(text.split())


def is_section_header(item: str) -> bool:
    """``"Optional:"``, ``"For the sauce:"``: a heading inside a list, not an ingredient or a step."""
    return item.rstrip().endswith(":")


def as_list(value, *, drop_headers: bool = False) -> list[str]:
    """Ingredients or directions as a clean list of strings, whatever shape they came in.

    Accepts:
        * a list (Wikibooks, or RecipeNLG through Hugging Face): its items;
        * a string holding a JSON-encoded list (RecipeNLG's CSV): the list inside;
        * plain text with one item per line;
        * ``None``: no items.

    Every item goes through ``clean_text`` and empty items are dropped. With
    ``drop_headers=True`` (for ingredients) section headers such as
    "Optional:" go too: they are not ingredients, and must not count as one.
    (Directions keep theirs: "Assemble in this order:" is a real step.)

    Example:
        >>> as_list(["2 eggs", "", "Optional:", "1 cup milk<ref>a note</ref>"], drop_headers=True)
        ['2 eggs', '1 cup milk']
        >>> as_list('["2 eggs", "1 c. milk &amp; cream"]')     # a list inside a string
        ['2 eggs', '1 c. milk & cream']
        >>> as_list("2 eggs\\n1 cup milk")                      # one per line
        ['2 eggs', '1 cup milk']
    """
    # TODO: What does a for-loop over the string '["2 eggs"]' give you, one step at a time?
    #       A string that starts with "[" is a list written as text: which helper imported above reads it back?
    #       And a string that is not a list: where does one item end and the next begin?
    #       Which items are left out: empty ones, and (only when drop_headers is set) which others?
    raise todo()


def format_recipe(example: dict) -> dict[str, str]:
    """One recipe as training text, in the fixed format of ``RECIPE_TEMPLATE``.

    Returns ``{"text": ...}`` (a dict, so ``dataset.map(format_recipe)`` adds
    a "text" column). Ingredients are joined with ``"; "``, directions with a
    space; the title is cleaned too. Ingredients and directions may come as a
    list or as a string (``as_list`` takes either).

    Example:
        >>> format_recipe({"title": "Toast", "ingredients": '["bread", "butter", "salt"]',
        ...                "directions": ["Toast the bread.", "Butter it."]})["text"]
        'RECIPE: Toast\\nINGREDIENTS: bread; butter; salt\\nDIRECTIONS: Toast the bread. Butter it.\\n[END]'
    """
    # TODO: RECIPE_TEMPLATE has {title}, {ingredients} and {directions} slots: what string goes in each?
    #       What does str(["bread", "butter"]) look like, and is that how a recipe reads?
    #       How will the model ever learn where a recipe stops?
    raise todo()


def recipe_checks(example: dict) -> dict[str, bool]:
    """Each rule a recipe must pass, by name, and whether this recipe passes it.

    * ``RULE_TITLE``: the cleaned title is not empty;
    * ``RULE_INGREDIENTS``: at least ``MIN_INGREDIENTS`` ingredients (after
      ``as_list(..., drop_headers=True)``, so "Optional:" and empty items do not count);
    * ``RULE_DIRECTIONS``: the directions, joined, have at least ``MIN_DIRECTIONS_CHARS`` characters.

    Example:
        >>> recipe_checks({"title": "Toast", "ingredients": ["bread", "butter"], "directions": ["Toast the bread."]})
        {'a real title': True, 'at least 3 ingredients': False, 'real directions': False}
    """
    # TODO: Is a recipe with exactly MIN_INGREDIENTS ingredients in or out?
    #       Which shape do you count: the raw field, or what as_list makes of it?
    raise todo()


def is_valid_recipe(example: dict) -> bool:
    """True when the recipe passes every rule of ``recipe_checks``: worth learning from.

    Example:
        >>> is_valid_recipe({"title": "Toast", "ingredients": ["bread", "butter"], "directions": ["Toast it well."]})
        False
    """
    # TODO: recipe_checks gives one True/False per rule: which built-in says whether they are all True?
    raise todo()


def title_key(title) -> str:
    """The same title however it is written: ``"Mac &amp; Cheese "`` and ``"mac & cheese"`` match."""
    return clean_text(title).casefold()


def prepare_splits(dataset, n_recipes: int | None = None, test_size: float = 0.1, seed: int = 42) -> DatasetDict:
    """From raw recipes to training text: filter, drop duplicates, subset, format, split.

    Args:
        dataset: raw recipes, as ``load_recipes`` returns them (a list of dicts,
            or a ``datasets.Dataset``).
        n_recipes: how many recipes to use at most (``None``: every valid one).
            They are picked at random, not the first ones: the first ones are
            all "A" recipes.
        test_size: the share kept for validation (0.1 = one recipe in ten).
        seed: the same seed gives the same subset and the same split.

    Steps:
        1. keep the valid recipes (``is_valid_recipe``);
        2. drop recipes whose title (``title_key``) was seen before — a second
           "Banana Oat Muffins" could land in the other split, a leak;
        3. shuffle with ``random.Random(seed)`` and keep ``n_recipes``;
        4. format each: ``{"title": cleaned title, "text": format_recipe(...)["text"]}``;
        5. split: ``Dataset.from_list(rows).train_test_split(test_size=..., seed=...)``
           and name the parts "train" and "validation". No recipe in both!

    Example:
        >>> splits = prepare_splits(load_recipes("wikibooks"), n_recipes=200, test_size=0.1, seed=0)
        >>> splits
        DatasetDict({train: Dataset({features: ['title', 'text'], num_rows: 180}),
                     validation: Dataset({features: ['title', 'text'], num_rows: 20})})
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size is the share of recipes kept for validation, between 0 and 1; got {test_size}")
    # TODO: Which three things happen before any formatting: filter, ..., ...?
    #       If the same title sits in both splits, what is validation loss really measuring?
    #       Dataset.train_test_split names its parts "train" and "test": which one becomes "validation"?
    raise todo()


# -- show your work: the data mess, measured ---------------------------------------------
def _length_stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0, "min": 0, "median": 0, "mean": 0, "max": 0}
    return {"count": len(values), "min": min(values), "median": statistics.median(values),
            "mean": round(statistics.fmean(values), 1), "max": max(values)}


def data_mess_report(recipes) -> dict:
    """What the raw data holds, and what cleaning and filtering do to it: numbers for the dashboard.

    Returns a dict:
        * ``recipes``: how many;
        * ``fields``: per field, the Python types seen (``{"list": 3129}`` or
          ``{"str": 13}``), how many are missing (``None``) or empty, and for
          title/ingredients/directions the length after cleaning (characters of
          the title, items of the lists);
        * ``markup``: how many recipes carry ``<ref>`` footnotes, other tags,
          wiki quotes or links, HTML entities, and section headers among the ingredients;
        * ``removed``: how many recipes fail each rule (a recipe can fail
          several), and how many valid ones repeat an earlier title;
        * ``kept``: how many are left — what ``prepare_splits`` splits when
          ``n_recipes`` is ``None``.

    Example:
        >>> data_mess_report(load_recipes("data/recipenlg_sample.csv"))["removed"]
        {'a real title': 1, 'at least 3 ingredients': 1, 'real directions': 1, 'duplicate title': 1}
    """
    recipes = list(recipes)
    types: dict[str, Counter] = {}
    missing: Counter = Counter()
    empty: Counter = Counter()
    lengths: dict[str, list[int]] = {"title": [], "ingredients": [], "directions": []}
    markup: Counter = Counter()
    removed: Counter = Counter({RULE_TITLE: 0, RULE_INGREDIENTS: 0, RULE_DIRECTIONS: 0, DUPLICATE: 0})
    seen_titles: set[str] = set()
    kept = 0
    for recipe in recipes:
        for field_name, value in recipe.items():
            types.setdefault(field_name, Counter())[type(value).__name__] += 1
            if value is None:
                missing[field_name] += 1
            elif (isinstance(value, str) and value.strip() in ("", "[]")) or (isinstance(value, list) and not value):
                empty[field_name] += 1
        raw_items = [recipe.get("title")]
        for field_name in ("ingredients", "directions"):
            value = recipe.get(field_name)
            raw_items += value if isinstance(value, list) else [value]
        raw = "\n".join(str(item) for item in raw_items if item is not None)
        markup["<ref> footnotes"] += bool(REF_FOOTNOTE.search(raw))
        markup["other HTML tags"] += bool(HTML_TAG.search(REF_FOOTNOTE.sub("", raw)))
        markup["wiki quotes or links"] += bool(WIKI_QUOTES.search(raw) or WIKI_LINK.search(raw))
        markup["HTML entities"] += bool(HTML_ENTITY.search(raw))
        raw_ingredients = recipe.get("ingredients")
        raw_ingredients = "\n".join(map(str, raw_ingredients)) if isinstance(raw_ingredients, list) \
            else str(raw_ingredients or "")
        markup["section headers"] += bool(SECTION_HEADER_RAW.search(raw_ingredients))
        ingredients = as_list(recipe.get("ingredients"), drop_headers=True)
        directions = as_list(recipe.get("directions"))
        lengths["title"].append(len(clean_text(recipe.get("title"))))
        lengths["ingredients"].append(len(ingredients))
        lengths["directions"].append(len(directions))
        checks = recipe_checks(recipe)
        for rule, passed in checks.items():
            removed[rule] += not passed
        if all(checks.values()):
            key = title_key(recipe.get("title"))
            if key in seen_titles:
                removed[DUPLICATE] += 1
            else:
                seen_titles.add(key)
                kept += 1
    fields = {}
    for field_name, seen in types.items():
        fields[field_name] = {"types": dict(seen), "missing": missing[field_name], "empty": empty[field_name]}
        if field_name in lengths:
            fields[field_name]["length_after_cleaning"] = _length_stats(lengths[field_name])
    return {"recipes": len(recipes), "fields": fields, "markup": dict(markup), "removed": dict(removed),
            "kept": kept}
