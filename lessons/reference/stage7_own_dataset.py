"""Stage 7 — Your own dataset: load it, clean it, format it, train on it.

Everything so far taught a model to write recipes, because recipes were the
data. Nothing in stages 3 to 5 knows about recipes: tokenizing, LoRA training
and perplexity work on any text. **Your data decides what the model learns.**
Bring a few dozen examples of something you care about (questions and
answers, tips, short notes in one shape) and the same pipeline teaches the
model that instead.

This stage is about the part every real project spends most of its time on:
getting your own file into shape. The example in ``data/own_dataset/`` is a
small set of kitchen-safety questions and answers, written for this project
and messed up on purpose, the way real files are:

1. **Loading** (``load_own_dataset``): CSV from a spreadsheet, JSON (a list
   of objects) or JSON Lines (one object per line). A bad file must stop
   with a message that names the file, the row and the problem — "line 7 is
   not valid JSON" is fixable; a traceback from deep inside ``json`` is not.
   The given code guards the rest (``lessons/engine/own_files.py``): a file
   over the size or row limit, a picture or spreadsheet saved as ``.csv``,
   UTF-16 text, a value of megabytes, JSON nested thousands deep.
2. **Cleaning** (``clean_examples``), each step because the model would
   otherwise learn the damage:

   * *mojibake* ("cafÃ©" instead of "café"): text saved as UTF-8 and read
     back as Windows-1252 somewhere along the way. The model would learn
     "Ã©" as a spelling.
   * *HTML entities* (``&amp;``, ``&#39;``, ``&quot;``): text scraped from a
     web page or exported from a web form. The model would write "&amp;".
   * *control characters* (a NUL byte, a backspace, an escape): invisible
     codes from binary files and old terminals that no text needs.
   * *stray whitespace*: double spaces, tabs, non-breaking spaces, line
     breaks inside a value. They cost tokens, and a line break inside a
     field blurs where the template's next field starts.
   * *blank and too-short rows*: a question without an answer teaches
     nothing; an answer of "No." teaches the model to stop, not to explain.
   * *duplicates*, removed **after** repairing: "cafÃ©" and "café" are the
     same example once repaired. A duplicate is seen twice per epoch (the
     model memorises it) and can land in both training and validation,
     which makes the validation loss look better than the model is.

   ``clean_examples`` shows its work: how many rows each step repaired or
   removed, with examples, so you can see (and the dashboard can chart)
   what your data really looked like.
3. **Formatting** (``format_example``): a template turns each row into one
   text, like stage 2's ``RECIPE: …`` format::

       QUESTION: How do I put out a grease fire?
       ANSWER: Turn off the heat and slide a lid over the pan.
       [END]

   Choosing a template: put what you will *give* the model first and what
   you want it to *write* last (a prompt is the template cut just before the
   last field); start each field with a short, distinctive label in capitals
   on its own line, so the model can tell the parts apart; and end with
   ``[END]`` so it learns to stop. Keep the same template for training and
   for prompting.
4. **Training and comparing**: ``prepare_own_splits`` makes the same
   ``DatasetDict`` (``"train"``/``"validation"``, a ``"text"`` column) that
   stage 2's ``prepare_splits`` makes, so stage 3 tokenizes it, stage 4B
   trains a LoRA adapter on it and stage 5 evaluates it unchanged.
   ``comparison_prompts`` names the prompts to give the base model, the
   recipe model and your own model side by side.

**How much data is enough?** The *format* (labels, where to stop) is learned
from a few dozen clean examples; facts and a consistent style need hundreds
to thousands. Ten good examples beat a hundred broken ones. Watch the
validation loss (stage 5): if it climbs while the training loss falls, the
model is memorising your few examples — get more data or train fewer steps.

**Privacy and licence.** Your file ends up inside the adapter's weights, and
a fine-tuned model can repeat its training text word for word (stage 5 checks
memorisation for exactly this reason). Leave out names, addresses, health
details and anything else you would not publish. Use text you wrote yourself
or text whose licence allows training and sharing the result; "found on the
web" is not a licence.

Fill in the TODOs and blanks, top to bottom, then run ``.venv/bin/python -m pytest checks/stage7``
in the project folder.
"""
from __future__ import annotations

import csv
import difflib
import html
import io
import json
import random
import re
import string
from pathlib import Path

from datasets import Dataset, DatasetDict

from lessons.engine import own_files  # given guards: size, binary files, UTF-16, limits (lessons/engine/limits.py)
from lessons.engine.constants import END_MARKER, PROMPT_TEMPLATE
from lessons.engine.errors import DatasetError, LabError
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# The file types the loader reads, by extension (lower case). ".ndjson" is
# another common name for JSON Lines.
FILE_TYPES = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# The template for the example data: what the model is given (the question)
# comes first, what it must write (the answer) last, then [END] so it stops.
QA_TEMPLATE = "QUESTION: {question}\nANSWER: {answer}\n" + END_MARKER

# A field shorter than this (after cleaning) is too short to teach anything:
# "No." or "ok" teach the model to stop, not to explain. Ten characters is
# about two short words; raise it for data with longer fields.
MIN_CHARS = 10

# Mojibake is UTF-8 bytes decoded with the wrong codec. Windows-1252 ("cp1252")
# is by far the most common culprit (Excel, old Windows tools); Latin-1 covers
# the five bytes cp1252 leaves undefined.
MOJIBAKE_CODECS = ("cp1252", "latin-1")

# The repairs, in the order they run, and why the order matters: mojibake
# first (its fix works on the raw damaged characters); entities next
# (``&nbsp;`` becomes a non-breaking space...); control characters after
# both (Latin-1 mojibake holds codes 0x80-0x9F until it is repaired);
# whitespace last (...turning that non-breaking space into a plain one).
REPAIR_STEPS = ("mojibake", "html_entities", "control_characters", "whitespace")
# The reasons a row is removed, in the order they are tested: a row that is
# blank is not also counted as too short or a duplicate.
REMOVAL_REASONS = ("blank", "too_short", "duplicate")
# How many examples of each repair and removal the report keeps to show.
MAX_EXAMPLES = 3

# Control characters: every code below 32 and from 127 to 159 except the
# whitespace ones (tab, line breaks, form feed; 0x1C-0x1F and 0x85 too, which
# str.split() counts as whitespace). NUL is 0x00.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


class TemplateError(LabError, ValueError):
    """A template that cannot format a row: a missing field or no [END]."""


# -- 1. Loading ------------------------------------------------------------------------
def read_utf8(path: Path) -> str:
    """The text of ``path``, decoded as UTF-8, or a ``DatasetError`` saying where it is not.

    Text files are bytes; UTF-8 is how almost all of today's files turn
    bytes into characters. A file saved by an old tool as Windows-1252 or
    Latin-1 stores "é" as the single byte 0xE9, which is not valid UTF-8: say
    which byte, on which line, and how to re-save the file. A byte-order mark
    (Excel's "CSV UTF-8" starts with one) is dropped, so it does not end up
    glued to the first column's name.

    The bytes come from ``own_files.read_dataset_bytes`` (given): it refuses a
    file over the size limit before reading it, names a file that is no text
    at all ("this is a PNG image, not a CSV file"), and hands UTF-16 and
    UTF-32 text (with a byte-order mark) on as UTF-8, so what reaches your
    decoding is text that is UTF-8, or meant to be.

    Example:
        >>> read_utf8(Path("tips.csv"))              # saved as Windows-1252
        DatasetError: tips.csv, row 3: byte 0xE9 (position 57) is not UTF-8
          hint: the file looks saved as Windows-1252 or Latin-1, where 0xE9 is 'é'; ...
    """
    raw = own_files.read_dataset_bytes(path)  # given: size limit, binary files, UTF-16/32 become UTF-8
    ### BEGIN SOLUTION
    ### HINT: raw.decode(...) raises UnicodeDecodeError; which attribute of the error says where?
    ### HINT: How many b"\n" come before that position? That tells you the line.
    ### PARTIAL: try:
    ### PARTIAL:     return raw.decode("utf-8-sig")
    ### PARTIAL: except UnicodeDecodeError as error:
    ### PARTIAL:     line = raw[: error.start].count(b"\n") + 1
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = raw[error.start]
        line = raw[: error.start].count(b"\n") + 1
        meaning = bytes([bad]).decode("cp1252", errors="replace")
        raise DatasetError(path, f"byte 0x{bad:02X} (position {error.start}) is not UTF-8", row=line,
                           hint=f"the file looks saved as Windows-1252 or Latin-1, where 0x{bad:02X} is "
                                f"{meaning!r}; open it and save it again as UTF-8 (Excel: 'CSV UTF-8').") from None
    ### END SOLUTION


def rows_from_csv(text: str, path: Path) -> list[dict]:
    """The rows of a CSV file: the first line names the columns.

    Row numbers in errors are lines of the file, as a spreadsheet numbers
    them (the header is row 1). A comma inside a value needs the value in
    double quotes; without them the row has more values than columns, which
    is the most common broken CSV. A line of nothing but spaces is kept as a
    blank row (cleaning will count and drop it); a line with nothing at all is
    skipped, as every CSV reader does. Lines may end in ``\\r\\n`` (Windows),
    ``\\n`` or ``\\r`` alone (old Macs). Rows are counted while reading, so a
    file past the row limit stops there; a value past the field limit is
    named, not mistaken for a broken quote.

    Example:
        >>> rows_from_csv('question,answer\\nWhy?,"Because, well."\\n', Path("x.csv"))
        [{'question': 'Why?', 'answer': 'Because, well.'}]
    """
    # newline="": \r\n, \n and \r alone each end a line; strict: a broken quote is an error, not a guess
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise DatasetError(path, f"not valid CSV: {error}", row=1) from None
    columns = [name.strip() for name in header]  # "question, answer" means "answer", not " answer"
    if "" in columns:
        raise DatasetError(path, f"column {columns.index('') + 1} of the header has no name", row=1,
                           hint="the first line must name every column, e.g. question,answer")
    rows = []
    while True:
        start = reader.line_num + 1  # the line this record starts on
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            if own_files.is_field_limit_error(error):  # given: a value of megabytes is not a quote problem
                raise own_files.field_too_long(path, row=start, csv_file=True) from None
            raise DatasetError(path, f"not valid CSV: {error}", row=start,
                               hint='is a double quote (") opened but never closed?') from None
        if not values:
            continue
        if len(values) != len(columns):
            if all(not value.strip() for value in values):
                values = [""] * len(columns)
            else:
                raise DatasetError(path, f"{len(values)} values, but the header names {len(columns)} columns "
                                         f"({', '.join(columns)})", row=start,
                                   hint='a comma inside a value needs the value in double quotes: "Salt, pepper"')
        own_files.check_row_count(len(rows), path, row=start)  # given: stop at the row limit
        row = dict(zip(columns, values))
        own_files.check_field_lengths(row, path, row_number=start, csv_file=True)  # given: the field limit
        rows.append(row)
    return rows


def rows_from_json(text: str, path: Path) -> list[dict]:
    """The rows of a JSON file holding one list of objects, ``[{...}, {...}]``.

    A syntax error names its line and column; after that, "row N" is the
    N-th object of the list (counting from 1).

    Example:
        >>> rows_from_json('[{"question": "Why?", "answer": "Because."}]', Path("x.json"))
        [{'question': 'Why?', 'answer': 'Because.'}]
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(path, f"line {error.lineno}, column {error.colno}: not valid JSON ({error.msg})",
                           hint="a missing comma between objects, or a trailing comma before ] or }?") from None
    if isinstance(data, dict):
        lists = [key for key, value in data.items() if isinstance(value, list)]
        hint = (f"the rows seem to be under {lists[0]!r}: save that list alone"
                if len(lists) == 1 else "a JSON file here is one list of objects: [{...}, {...}]")
        raise DatasetError(path, "the file holds one object, not a list of rows", hint=hint)
    if not isinstance(data, list):
        raise DatasetError(path, f"the file holds a {type(data).__name__}, not a list of rows",
                           hint="a JSON file here is one list of objects: [{...}, {...}]")
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            raise DatasetError(path, f"is a {type(item).__name__}, not an object with named fields", row=number,
                               hint='each row must look like {"question": "...", "answer": "..."}')
    return data


def rows_from_jsonl(text: str, path: Path) -> list[dict]:
    """The rows of a JSON Lines file: one JSON object per line, blank lines skipped.

    Each line is parsed on its own, so a broken line can be named exactly:
    "row N" is line N of the file (counting from 1, blank lines included, so
    it is the number your editor shows). Follow ``rows_from_csv`` and
    ``rows_from_json`` above: the same kinds of error, the same words.

    Example:
        >>> rows_from_jsonl('{"question": "Why?", "answer": "Because."}\\n\\n', Path("x.jsonl"))
        [{'question': 'Why?', 'answer': 'Because.'}]
        >>> rows_from_jsonl('{"question": "Why?"}\\n{"question": \\n', Path("x.jsonl"))
        DatasetError: x.jsonl, row 2: not valid JSON (Expecting value, column 14)
    """
    ### BEGIN SOLUTION
    ### HINT: text.splitlines() gives the lines; which enumerate(...) start makes the first one line 1?
    ### HINT: What should happen to a line that is only whitespace?
    ### HINT: json.loads raises json.JSONDecodeError; what do you raise instead, naming which row?
    ### HINT: A line such as [1, 2] is valid JSON but not a row: how do you tell?
    ### PARTIAL: rows = []
    ### PARTIAL: for number, line in enumerate(text.splitlines(), start=1):
    ### PARTIAL:     if not line.strip():
    ### PARTIAL:         continue
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(path, f"not valid JSON ({error.msg}, column {error.colno})", row=number,
                               hint="each line must be one complete object: {\"question\": \"...\", ...}") from None
        if not isinstance(item, dict):
            raise DatasetError(path, f"is a {type(item).__name__}, not an object with named fields", row=number,
                               hint='each line must look like {"question": "...", "answer": "..."}')
        rows.append(item)
    return rows
    ### END SOLUTION


# The reader for each file type. The JSON ones are wrapped (given) in the row
# and field limits that rows_from_csv checks line by line, and in a clear
# error for JSON nested thousands deep (Python's own is a RecursionError).
READERS = {"csv": rows_from_csv, "json": own_files.guarded_reader(rows_from_json, "json"),
           "jsonl": own_files.guarded_reader(rows_from_jsonl, "jsonl")}


def load_own_dataset(path: str | Path, *, required_columns: tuple[str, ...] | list[str] = ()) -> list[dict]:
    """Load your dataset as a list of dicts, one per row, from CSV, JSON or JSON Lines.

    Args:
        path: a ``.csv`` (first line names the columns), ``.json`` (one list of
            objects) or ``.jsonl`` (one object per line) file, in UTF-8.
        required_columns: column names every row must have, such as
            ``("question", "answer")``; default none.

    Any problem stops with a ``DatasetError`` that names the file, the row
    and the problem, with a hint: a missing file, an extension it cannot
    read, bytes that are not UTF-8, broken CSV or JSON, an empty file, a file
    with no rows (for a CSV with only its header, say so), a missing column.
    The words fit the file: a CSV has a header and rows, JSON holds objects.
    The mess *inside* the values (mojibake, blank answers, duplicates) is not
    an error: it is kept exactly as it is, for ``clean_examples`` to repair
    and count.

    Example:
        >>> rows = load_own_dataset("data/own_dataset/kitchen_safety.csv", required_columns=["question", "answer"])
        >>> len(rows), rows[0]["question"]
        (49, 'How long can cooked rice sit out at room temperature?')
    """
    path = Path(path)
    ### BEGIN SOLUTION
    ### HINT: Which part of a Path is ".csv"? Is ".CSV" the same file type?
    ### HINT: What should happen, before any reading, for an extension FILE_TYPES does not know?
    ### HINT: After reading: is the file empty (or only whitespace)? Did it give any rows at all?
    ### HINT: For required columns: which columns does each row lack? For a CSV, row 1 is the header.
    ### PARTIAL: kind = FILE_TYPES.get(path.suffix.lower())
    ### PARTIAL: if kind is None:
    ### PARTIAL:     raise DatasetError(path, f"cannot read {path.suffix!r} files", hint=...)
    kind = FILE_TYPES.get(path.suffix.lower())
    if kind is None:
        raise DatasetError(path, f"cannot read {path.suffix!r} files" if path.suffix else "the file has no extension",
                           hint=f"save your data as one of: {', '.join(FILE_TYPES)}")
    if not path.is_file():
        raise DatasetError(path, "no such file", hint=f"is the path right? (looked in {path.resolve().parent})")
    text = read_utf8(path)
    if not text.strip():
        raise DatasetError(path, "the file is empty", hint="did it save? Open it and look.")
    rows = READERS[kind](text, path)
    if not rows:
        raise DatasetError(path, "the file has no rows" + (" (only a header)" if kind == "csv" else ""),
                           hint="add at least one example below the column names" if kind == "csv"
                           else "add at least one object")
    for number, row in enumerate(rows, start=1):
        missing = [column for column in required_columns if column not in row]
        if missing:
            found = list(row)
            close = difflib.get_close_matches(missing[0], found, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "check the spelling of the column names"
            raise DatasetError(path, f"missing the column {missing[0]!r} (found: {', '.join(map(str, found))})",
                               row=1 if kind == "csv" else number, hint=hint)
    return rows
    ### END SOLUTION


# -- 2. Cleaning -------------------------------------------------------------------------
def fix_mojibake(text: str) -> str:
    """Undo mojibake: text that was UTF-8 bytes decoded as Windows-1252 (or Latin-1).

    How the damage happens: "é" is two bytes in UTF-8, C3 A9. A tool that
    reads them as Windows-1252 shows two characters, "Ã" (C3) and "©" (A9).
    The repair runs that backwards: encode the damaged text with the wrong
    codec to get the original bytes back, then decode them as UTF-8. Text
    that was fine does not survive the round trip ("é" alone encodes to the
    byte E9, which is not valid UTF-8) and is returned unchanged; so is text
    with characters the wrong codec cannot hold.

    Why not the ``ftfy`` package? It repairs far more (damage applied twice,
    a mix of good and damaged text in one value) and is the right tool for a
    large scraped corpus; here one round trip repairs the common case, you
    see exactly how, and nothing new is installed.

    Example:
        >>> fix_mojibake("cafÃ©")
        'café'
        >>> fix_mojibake("donâ€™t heat above 60 Â°C")
        'don’t heat above 60 °C'
        >>> fix_mojibake("café")        # already fine: left alone
        'café'
    """
    ### BEGIN SOLUTION
    ### HINT: Which bytes did "Ã©" come from? Try "Ã©".encode("cp1252").
    ### HINT: When the round trip raises UnicodeEncodeError or UnicodeDecodeError, what does that say about the text?
    ### HINT: Pure ASCII text survives any round trip unchanged; is that a problem?
    ### PARTIAL: for codec in MOJIBAKE_CODECS:
    ### PARTIAL:     try:
    ### PARTIAL:         return text.encode(codec).decode("utf-8")
    for codec in MOJIBAKE_CODECS:
        try:
            return text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return text
    ### END SOLUTION


def normalise_whitespace(text: str) -> str:
    """Every run of whitespace (spaces, tabs, line breaks, non-breaking spaces) becomes one space; no space at the ends.

    ``str.split()`` with no argument splits on any run of whitespace and
    drops it at both ends, so joining its pieces with one space is the whole
    job. Line breaks go too: in the template, a line break starts the next
    field.

    Example:
        >>> normalise_whitespace("  Step back\\tand  let\\u00a0it\\nfall. ")
        'Step back and let it fall.'
    """
    return " ".join(text.split())  # BLANK: text -- which str method splits on every kind of whitespace at once?


def remove_control_characters(text: str) -> str:
    """Remove control characters (``CONTROL_CHARACTERS``): NUL, backspace, escape and the like.

    They come from binary files, old terminals and broken exports; no text
    needs them, they are invisible on screen, and a NUL byte cuts a text
    short in many tools. Whitespace (tabs, line breaks) is the next step's.

    Example:
        >>> remove_control_characters("Hot\\x00 oil\\x08!")
        'Hot oil!'
    """
    return CONTROL_CHARACTERS.sub("", text)


def repair_text(text) -> dict[str, str]:
    """Repair one value, showing the text after each step: ``{"original", "mojibake", "html_entities", ...}``.

    The steps are ``REPAIR_STEPS``, in that order: mojibake, HTML entities,
    control characters, whitespace.

    ``None`` (a missing value in JSON) counts as the empty text and a number
    as its digits, so every value can be repaired and measured the same way.

    Example:
        >>> repair_text("  Salt &amp; pepper, sautÃ©ed ")
        {'original': '  Salt &amp; pepper, sautÃ©ed ',
         'mojibake': '  Salt &amp; pepper, sautéed ',
         'html_entities': '  Salt & pepper, sautéed ',
         'control_characters': '  Salt & pepper, sautéed ',
         'whitespace': 'Salt & pepper, sautéed'}
    """
    text = "" if text is None else str(text)
    steps = {"original": text}
    text = fix_mojibake(text)
    steps["mojibake"] = text
    text = html.unescape(text)  # BLANK: html -- which standard module knows that &amp; means &?
    steps["html_entities"] = text
    text = remove_control_characters(text)
    steps["control_characters"] = text
    text = normalise_whitespace(text)
    steps["whitespace"] = text
    return steps


@own_files.capped_report  # given: each text in the report's examples is cut to LIMITS.report_example_chars
def clean_examples(rows: list[dict], *, text_fields: list[str] | tuple[str, ...], min_chars: int = MIN_CHARS
                   ) -> tuple[list[dict], dict]:
    """Repair, filter and de-duplicate rows; return the clean rows and a report of what happened.

    Args:
        rows: rows from ``load_own_dataset`` (they are not changed).
        text_fields: the fields the model will read, such as
            ``["question", "answer"]``; other fields are kept as they are.
        min_chars: a field shorter than this after repair makes the row too
            short (default ``MIN_CHARS``).

    Steps, in order:

    1. repair every text field with ``repair_text`` (each step of
       ``REPAIR_STEPS``: mojibake, HTML entities, control characters,
       whitespace), counting the rows each step changed;
    2. drop *blank* rows: a text field that is missing or empty after repair;
    3. drop *too short* rows: a text field shorter than ``min_chars``;
    4. drop *duplicates*: a row whose repaired text fields are exactly those
       of an earlier kept row (the first one stays). Only after repairing,
       so "cafÃ©" and "café" are recognised as the same row.

    Returns:
        ``(clean_rows, report)``; the report shows the work::

            {"rows_in": 49, "rows_out": 36,
             "repaired": {"mojibake": 6, "html_entities": 5, "control_characters": 0, "whitespace": 7},
             "removed": {"blank": 3, "too_short": 3, "duplicate": 7},
             "examples": {"mojibake": [{"index": 1, "field": "answer", "before": "5 Â°C…", "after": "5 °C…"}, …],
                          "blank": [{"index": 4, "row": {...}}, …],
                          "duplicate": [{"index": 8, "row": {...}, "same_as": 5}, …], …}}

        ``repaired`` counts rows a step changed (a row counts once per step,
        however many of its fields changed); ``removed`` counts rows dropped
        for each reason; ``index`` is the row's position in ``rows`` (from 0)
        and ``same_as`` the position of the row it duplicates. ``examples``
        keeps at most ``MAX_EXAMPLES`` per step and reason; the given
        ``@own_files.capped_report`` cuts each text in them to
        ``LIMITS.report_example_chars`` characters ("… (N characters)"), so
        an 11 MB answer does not make an 11 MB report.
    """
    ### BEGIN SOLUTION
    ### HINT: Start the report with a zero for every name in REPAIR_STEPS and REMOVAL_REASONS.
    ### HINT: repair_text shows each step's text: which steps changed it compared with the step before?
    ### HINT: A row is blank, too short or a duplicate, tested in that order: which `continue` skips the rest?
    ### HINT: What makes two rows "the same"? A tuple of their repaired text fields can go in a dict.
    ### PARTIAL: report = {"rows_in": len(rows), "rows_out": 0,
    ### PARTIAL:           "repaired": dict.fromkeys(REPAIR_STEPS, 0), "removed": dict.fromkeys(REMOVAL_REASONS, 0),
    ### PARTIAL:           "examples": {name: [] for name in REPAIR_STEPS + REMOVAL_REASONS}}
    ### PARTIAL: first_seen = {}  # repaired text fields -> index of the first row that had them
    report = {"rows_in": len(rows), "rows_out": 0,
              "repaired": dict.fromkeys(REPAIR_STEPS, 0), "removed": dict.fromkeys(REMOVAL_REASONS, 0),
              "examples": {name: [] for name in REPAIR_STEPS + REMOVAL_REASONS}}

    def note(name: str, example: dict) -> None:
        if len(report["examples"][name]) < MAX_EXAMPLES:
            report["examples"][name].append(example)

    clean_rows = []
    first_seen = {}  # repaired text fields -> index of the first row that had them
    for index, row in enumerate(rows):
        repaired = dict(row)
        changed_by = set()
        for field in text_fields:
            steps = repair_text(row.get(field))
            before = steps["original"]
            for step in REPAIR_STEPS:
                if steps[step] != before:
                    if step not in changed_by:
                        note(step, {"index": index, "field": field, "before": before, "after": steps[step]})
                    changed_by.add(step)
                before = steps[step]
            repaired[field] = steps["whitespace"]
        for step in changed_by:
            report["repaired"][step] += 1

        values = tuple(repaired[field] for field in text_fields)
        if any(value == "" for value in values):
            reason = "blank"
        elif any(len(value) < min_chars for value in values):
            reason = "too_short"
        elif values in first_seen:
            reason = "duplicate"
        else:
            first_seen[values] = index
            clean_rows.append(repaired)
            continue
        report["removed"][reason] += 1
        example = {"index": index, "row": row}
        if reason == "duplicate":
            example["same_as"] = first_seen[values]
        note(reason, example)

    report["rows_out"] = len(clean_rows)
    return clean_rows, report
    ### END SOLUTION


# -- 3. Formatting -----------------------------------------------------------------------
def template_fields(template: str) -> list[str]:
    """The field names a template asks for, in order: ``"Q: {question} A: {answer}"`` → ``["question", "answer"]``.

    ``string.Formatter().parse`` splits a template into its literal text and
    its ``{fields}`` exactly as ``str.format`` will; ``{{`` and ``}}`` are
    literal braces. An empty ``{}`` cannot be filled from a row: name it.
    """
    fields = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise TemplateError(f"the template has {{{name}}}: each field must be named after a column, "
                                "like {question}")
        if name not in fields:
            fields.append(name)
    return fields


def format_example(row: dict, template: str) -> str:
    """Fill ``template`` with ``row``'s fields: one training text, ending with ``[END]``.

    Two mistakes are caught before they cost a training run, each with a
    ``TemplateError`` (a ``ValueError``) that says which:

    * the template names a field the row does not have (a typo such as
      ``{anwser}``, or the wrong data file) — say which field, and which the
      row has;
    * the template does not end with ``END_MARKER``: the model would never
      see where an example stops, and would write on and on.

    Example:
        >>> format_example({"question": "Why rest meat?", "answer": "So the juices settle."}, QA_TEMPLATE)
        'QUESTION: Why rest meat?\\nANSWER: So the juices settle.\\n[END]'
        >>> format_example({"question": "Why?"}, QA_TEMPLATE)
        TemplateError: the template names {answer}, but the row has no 'answer' (it has: question)
    """
    ### BEGIN SOLUTION
    ### HINT: Which function above lists the fields a template asks for?
    ### HINT: What should the template's last characters be (ignore trailing whitespace)?
    ### HINT: What does template.format(**row) raise for a missing field, and would a beginner understand it?
    ### PARTIAL: if not template.rstrip().endswith(END_MARKER):
    ### PARTIAL:     raise TemplateError(...)
    if not template.rstrip().endswith(END_MARKER):
        raise TemplateError(f"the template must end with {END_MARKER}, or the model never learns where an "
                            f"example stops: {template!r}")
    for field in template_fields(template):
        if field not in row:
            raise TemplateError(f"the template names {{{field}}}, but the row has no {field!r} "
                                f"(it has: {', '.join(map(str, row))})")
    return template.rstrip().format(**row)
    ### END SOLUTION


def prompt_for(row: dict, template: str) -> str:
    """The prompt for ``row``: the formatted text cut just before the last field's value.

    What the model is given is everything up to the last field; what it must
    write is that field (the answer) and ``[END]``. Trailing spaces are
    dropped, as in stage 1's prompts: the tokenizer glues a space to the
    word after it (" Turn"), so a prompt ending in a space would ask for a
    token the model rarely saw.

    Example:
        >>> prompt_for({"question": "Why rest meat?", "answer": "So the juices settle."}, QA_TEMPLATE)
        'QUESTION: Why rest meat?\\nANSWER:'
    """
    ### BEGIN SOLUTION
    ### HINT: Where in the template does "{" + last field + "}" start?
    ### HINT: The part before it is itself a template: which fields does it need?
    ### PARTIAL: last = template_fields(template)[-1]
    ### PARTIAL: head = template[: template.index("{" + last)]
    last = template_fields(template)[-1]
    head = template[: template.index("{" + last)]
    return format_example(row, head + END_MARKER)[: -len(END_MARKER)].rstrip()
    ### END SOLUTION


# -- 4. Splits for stages 3-5, and prompts to compare ------------------------------------
def split_rows(rows: list[dict], *, test_size: float = 0.2, seed: int = 42) -> tuple[list[dict], list[dict]]:
    """``(train_rows, validation_rows)``: a shuffled split, the same for the same seed.

    At least one row goes to each side. Validation rows are never trained on,
    so the model's loss on them says how it does on examples it has not seen.
    """
    if len(rows) < 2:
        raise LabError(f"only {len(rows)} example(s) after cleaning: at least 2 are needed, one to train on "
                       "and one to validate with (and far more to learn anything).")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_validation = min(len(rows) - 1, max(1, round(len(rows) * test_size)))
    return [rows[i] for i in order[n_validation:]], [rows[i] for i in order[:n_validation]]


def prepare_own_splits(rows: list[dict], template: str = QA_TEMPLATE, *, test_size: float = 0.2, seed: int = 42,
                       title_field: str | None = None) -> DatasetDict:
    """The clean rows as a ``DatasetDict`` that stages 3-5 use exactly like stage 2's recipes.

    ``"train"`` and ``"validation"`` splits (from ``split_rows``), each with a
    ``"text"`` column (``format_example``) and a ``"title"`` column (the
    ``title_field``, by default the template's first field, such as the
    question), the same columns stage 2's ``prepare_splits`` gives. Then:
    ``configure_tokenizer`` and ``tokenize_function`` (stage 3), the LoRA run
    (stage 4B), ``perplexity`` and ``compare_models`` (stage 5).

    Example:
        >>> splits = prepare_own_splits(clean_rows, QA_TEMPLATE, test_size=0.2, seed=42)
        >>> splits
        DatasetDict({train: Dataset({features: ['text', 'title'], num_rows: 29}),
                     validation: Dataset({features: ['text', 'title'], num_rows: 7})})
    """
    ### BEGIN SOLUTION
    ### HINT: split_rows gives two lists of rows; which function turns one row into its training text?
    ### HINT: Dataset.from_list([{"text": ..., "title": ...}, ...]) builds one split.
    ### HINT: Could one row end up in both splits? What would that do to the validation loss?
    ### PARTIAL: title_field = title_field or template_fields(template)[0]
    ### PARTIAL: train_rows, validation_rows = split_rows(rows, test_size=test_size, seed=seed)
    title_field = title_field or template_fields(template)[0]
    train_rows, validation_rows = split_rows(rows, test_size=test_size, seed=seed)

    def as_dataset(part: list[dict]) -> Dataset:
        return Dataset.from_list([{"text": format_example(row, template), "title": str(row.get(title_field, ""))}
                                  for row in part])

    return DatasetDict({"train": as_dataset(train_rows), "validation": as_dataset(validation_rows)})
    ### END SOLUTION


def comparison_prompts(rows: list[dict], template: str = QA_TEMPLATE, *, n: int = 3, test_size: float = 0.2,
                       seed: int = 42, recipe_title: str = "Tomato Soup") -> list[dict]:
    """The prompts to give the base model, the recipe model and your own model, side by side.

    ``n`` prompts from your *validation* rows (the same split
    ``prepare_own_splits`` makes with the same ``test_size`` and ``seed``, so
    your model has never seen their answers), each with the answer written
    in your data to compare against, and one recipe prompt. Expect each
    fine-tuned model to do best in its own format: the recipe model may
    answer your question with ingredients, and your model may have
    forgotten how a recipe starts.

    Returns:
        ``[{"kind": "own", "prompt": "QUESTION: …\\nANSWER:", "expected": "…"}, …,
        {"kind": "recipe", "prompt": "RECIPE: Tomato Soup\\nINGREDIENTS:", "expected": ""}]``
    """
    last = template_fields(template)[-1]
    _, validation_rows = split_rows(rows, test_size=test_size, seed=seed)
    prompts = [{"kind": "own", "prompt": prompt_for(row, template), "expected": str(row.get(last, ""))}
               for row in validation_rows[:n]]
    prompts.append({"kind": "recipe", "prompt": PROMPT_TEMPLATE.format(title=recipe_title), "expected": ""})
    return prompts
