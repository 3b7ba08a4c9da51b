"""Stage 7's guards on a learner's own file: a bounded cost, and the right explanation when it is no dataset.

The lesson's given code (``lessons/stage7_own_dataset.py``) calls these, so a learner never writes
them; the dashboard and the training job call ``check_size`` and ``check_columns`` too, before any
learner code runs. Each refusal is a ``DatasetError`` (the file, the row where there is one, the
problem, a hint), the same as the loader's own errors, and every number is in ``LIMITS``
(``lessons/engine/limits.py``), read at call time so a test can lower it.

* ``check_size``: the file's size from ``stat``, before a byte of it is read;
* ``read_dataset_bytes``: the bytes, once they are known to be text. Images, PDFs, spreadsheets and
  archives are named ("this is a PNG image, not a CSV file"); UTF-16 and UTF-32 with a byte-order
  mark are decoded and handed on as UTF-8, so the lesson's UTF-8 decoding reads them;
* ``guarded_reader``: a JSON or JSON Lines reader with the row and field limits, and a readable error
  for JSON nested too deep (Python's own is a bare ``RecursionError``);
* ``check_row_count``, ``check_field_lengths``, ``is_field_limit_error``: the same limits, row by row,
  inside the CSV reader;
* ``check_columns``: the template's fields against the file's columns, before anything is cleaned;
* ``capped_report``: the cleaning report's examples cut to ``LIMITS.report_example_chars``.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import functools
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

from .errors import DatasetError
from .limits import LIMITS

WHERE = "lessons/engine/limits.py"  # named in hints, for the instructor who wants to raise a limit

# A byte-order mark: the first bytes of a UTF-16 or UTF-32 text say which it is. UTF-32 LE starts
# with UTF-16 LE's mark (FF FE) followed by 00 00, so it is tested first.
BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 (little-endian)"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32 (big-endian)"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 (little-endian)"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 (big-endian)"),
]

SPREADSHEET_HINT = ("open it in your spreadsheet program and save it as 'CSV UTF-8 (comma delimited)' (.csv), "
                    "then load that file")
ARCHIVE_HINT = "unpack it first, then load the CSV, JSON or JSON Lines file inside"
NOT_DATA_HINT = ("pick the file that holds your rows as text: CSV, JSON or JSON Lines (was another file renamed "
                 "to this name?)")

# The first bytes of the files most often renamed or picked by mistake ("magic numbers").
SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", "a PNG image", NOT_DATA_HINT),
    (b"\xff\xd8\xff", "a JPEG image", NOT_DATA_HINT),
    (b"GIF87a", "a GIF image", NOT_DATA_HINT),
    (b"GIF89a", "a GIF image", NOT_DATA_HINT),
    (b"%PDF-", "a PDF document", "copy the text out of the PDF into a spreadsheet, then save it as CSV UTF-8"),
    (b"PK\x03\x04", "a ZIP archive", ARCHIVE_HINT),  # also .xlsx, .docx, .ods: told apart by zip_kind
    (b"PK\x05\x06", "a ZIP archive", ARCHIVE_HINT),  # an empty one
    (b"\x1f\x8b", "a gzip-compressed file", ARCHIVE_HINT),
    (b"\xfd7zXZ\x00", "an xz-compressed file", ARCHIVE_HINT),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", ARCHIVE_HINT),
    (b"Rar!\x1a\x07", "a RAR archive", ARCHIVE_HINT),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office file (.xls or .doc)", SPREADSHEET_HINT),
    (b"SQLite format 3\x00", "an SQLite database",
     "export the table as CSV: sqlite3 -csv -header FILE.db 'SELECT * FROM mytable' > rows.csv"),
]

# Control bytes that text (UTF-8, Windows-1252, Latin-1) almost never holds: all below 0x20 except
# tab, line feed, carriage return, form feed and escape. A text file may carry one or two (cleaning
# removes them); when they are more than a tenth of the first kilobytes, the file is binary data.
BINARY_BYTES = bytes(b for b in range(0x20) if b not in b"\t\n\r\x0c\x1b")
BINARY_SHARE = 0.10
SNIFF_BYTES = 8192


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1_000_000 else f"{n:,} bytes"


def _what_it_should_be(path: Path) -> str:
    kind = path.suffix.lstrip(".").upper() or "data"
    return {"JSONL": "JSON Lines", "NDJSON": "JSON Lines"}.get(kind, kind)


# -- before reading: the size ----------------------------------------------------------------
def check_size(path: str | Path) -> int:
    """The file's size in bytes, from ``stat`` (nothing is read); a ``DatasetError`` above the limit.

    A file that does not exist is left to the loader, which says "no such file" (0 is returned).

    Example:
        >>> check_size("big.csv")            # 300 MB
        DatasetError: big.csv: the file is 300.0 MB; the most a dataset file may be here is 50.0 MB
          hint: LoRA learns a format from hundreds of examples, not millions: ...
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    limit = LIMITS.own_dataset_max_bytes
    if size > limit:
        raise DatasetError(path, f"the file is {_size(size)}; the most a dataset file may be here is {_size(limit)}",
                           hint="LoRA learns a format from hundreds of examples, not millions: save a sample of "
                                "your rows (the first few thousand, or a random few thousand) in a smaller file "
                                f"(the limit is own_dataset_max_bytes in {WHERE})")
    return size


# -- what the bytes are ----------------------------------------------------------------------------
def zip_kind(raw: bytes) -> str:
    """What a ZIP-based file is: an Excel workbook, a Word document, an OpenDocument file, or a plain archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = archive.namelist()
            mimetype = archive.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, ValueError):
        return "a ZIP archive"
    if any(name.startswith("xl/") for name in names):
        return "an Excel workbook (.xlsx)"
    if any(name.startswith("word/") for name in names):
        return "a Word document (.docx)"
    if "spreadsheet" in mimetype:
        return "an OpenDocument spreadsheet (.ods)"
    if "opendocument" in mimetype:
        return "an OpenDocument file"
    return "a ZIP archive"


def not_text(raw: bytes, expected: str = "CSV") -> tuple[str, str] | None:
    """``(problem, hint)`` for bytes that are not a text file, or None for text; ``expected`` names the file type.

    Known formats by their first bytes ("magic numbers"); anything else by its share of control
    bytes. A byte-order mark means text: UTF-16 and UTF-32 hold many zero bytes, and are decoded
    (``read_dataset_bytes``), not refused.

    Example:
        >>> not_text(b"\\x89PNG\\r\\n\\x1a\\n...", "CSV")[0]
        'this is a PNG image, not a CSV file'
        >>> not_text("question,answer\\n".encode())    # text: None
    """
    for signature, what, hint in SIGNATURES:
        if raw.startswith(signature):
            if what == "a ZIP archive":
                what = zip_kind(raw)
                hint = (SPREADSHEET_HINT if "workbook" in what or "spreadsheet" in what
                        else NOT_DATA_HINT if what != "a ZIP archive" else ARCHIVE_HINT)
            return f"this is {what}, not a {expected} file", hint
    if raw.startswith(b"PAR1") and raw.endswith(b"PAR1"):
        return (f"this is a Parquet file, not a {expected} file",
                "save it as JSON Lines with pandas: "
                "pandas.read_parquet(FILE).to_json('rows.jsonl', orient='records', lines=True)")
    if any(raw.startswith(bom) for bom, _, _ in BOMS):
        return None
    head = raw[:SNIFF_BYTES]
    if not head:
        return None
    zeros = head.count(0)
    if zeros >= len(head) * 0.3 and max(head[0::2].count(0), head[1::2].count(0)) >= zeros * 0.9:
        return ("the file looks like UTF-16 text without a byte-order mark (every other byte is 0); "
                "this lab reads UTF-8",
                "open it and save it again as UTF-8 (Excel: 'CSV UTF-8'; an editor: Save with Encoding > UTF-8)")
    control = sum(head.count(byte) for byte in BINARY_BYTES)
    if control > len(head) * BINARY_SHARE:
        return (f"this is binary data, not a {expected} file: {control:,} of its first {len(head):,} bytes are "
                "control bytes (such as NUL) that a text file does not hold", NOT_DATA_HINT)
    return None


def read_dataset_bytes(path: str | Path) -> bytes:
    """The bytes of a dataset file, as UTF-8 where the file says it is UTF-16 or UTF-32; refusals as ``DatasetError``.

    In order: the size (``check_size``, before reading); a format that is not text (``not_text``:
    "this is a PNG image, not a CSV file"); a byte-order mark of UTF-16 or UTF-32, whose text is
    decoded and encoded again as UTF-8 (without a mark). Any other bytes come back as they are, a
    UTF-8 byte-order mark included: deciding what to do with it is the lesson's.

    Example:
        >>> read_dataset_bytes("from_notepad.csv")   # UTF-16 LE with its mark: FF FE 71 00 75 00 ...
        b'question,answer\\n...'
    """
    path = Path(path)
    check_size(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(path, "no such file", hint=f"is the path right? (looked in {path.resolve().parent})") \
            from None
    found = not_text(raw, _what_it_should_be(path))
    if found:
        problem, hint = found
        raise DatasetError(path, problem, hint=hint)
    for bom, codec, name in BOMS:
        if raw.startswith(bom):
            body = raw[len(bom):]
            try:
                text = body.decode(codec)
            except UnicodeDecodeError as error:
                line = body[: error.start].decode(codec, errors="replace").count("\n") + 1
                raise DatasetError(path, f"the file starts with a {name} byte-order mark, but the bytes at "
                                         f"position {len(bom) + error.start} are not {name}", row=line,
                                   hint="open it and save it again as UTF-8 (Excel: 'CSV UTF-8')") from None
            return text.encode("utf-8")
    return raw


# -- while reading: rows and fields ---------------------------------------------------------------
def too_many_rows(path: str | Path, *, row: int | None = None) -> DatasetError:
    """The error for a file with more rows than ``LIMITS.own_dataset_max_rows``; ``row`` is where reading stopped."""
    limit = LIMITS.own_dataset_max_rows
    return DatasetError(path, f"more than {limit:,} rows, the most a dataset may have here",
                        row=row, hint=f"LoRA learns a format from hundreds of examples: keep a sample of at most "
                                      f"{limit:,} rows in a smaller file (the limit is own_dataset_max_rows in "
                                      f"{WHERE})")


def check_row_count(count: int, path: str | Path, *, row: int) -> None:
    """Before keeping one more row: a ``DatasetError`` if ``count`` rows are kept already, the limit.

    Called while reading, so a file with a million rows stops at the first row past the limit
    instead of being read to its end.
    """
    if count >= LIMITS.own_dataset_max_rows:
        raise too_many_rows(path, row=row)


def field_too_long(path: str | Path, *, row: int | None, column: str | None = None, size: int | None = None,
                   csv_file: bool = False) -> DatasetError:
    """The error for one value longer than ``LIMITS.own_dataset_max_field_chars`` characters."""
    limit = LIMITS.own_dataset_max_field_chars
    what = (f"the value of {column!r} is {size:,} characters long, over" if size is not None
            else "a value is longer than")
    hint = ("split it into shorter examples: the model reads only the first few hundred tokens of each "
            f"(the limit is own_dataset_max_field_chars in {WHERE})")
    if csv_file:
        hint = ('a value this long is usually a double quote (") opened and never closed, which swallows the '
                "rows after it; if the text really is this long, " + hint)
    return DatasetError(path, f"{what} the limit of {limit:,} characters for one field", row=row, hint=hint)


def is_field_limit_error(error: csv.Error) -> bool:
    """Whether the csv module refused a field for its own size limit (131,072 characters, above ours)."""
    return "field larger than field limit" in str(error)


def value_length(value: Any) -> int:
    """The length of a value as the lab will read it: a text's characters; a list or object as JSON text."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (list, dict)):
        return len(json.dumps(value, ensure_ascii=False, default=str))
    return 0


def check_field_lengths(row: dict, path: str | Path, *, row_number: int | None, csv_file: bool = False) -> None:
    """A ``DatasetError`` for the first value of ``row`` longer than ``LIMITS.own_dataset_max_field_chars``."""
    limit = LIMITS.own_dataset_max_field_chars
    for column, value in row.items():
        size = value_length(value)
        if size > limit:
            raise field_too_long(path, row=row_number, column=str(column), size=size, csv_file=csv_file)


def too_deep(path: str | Path, *, row: int | None = None) -> DatasetError:
    """The error for JSON nested deeper than Python's reader follows (it raises a bare ``RecursionError``)."""
    return DatasetError(path, f"nested deeper than about {sys.getrecursionlimit():,} levels (lists or objects "
                              "inside each other), more than Python's JSON reader follows", row=row,
                        hint='a dataset is a list of flat objects: [{"question": "...", "answer": "..."}, ...], '
                             "each value a text or a number")


def _data_lines(text: str) -> list[int]:
    """The line numbers (from 1) of the lines that are not blank: row k of a JSON Lines file is line [k]."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def guarded_reader(reader: Callable[[str, Path], list], kind: str) -> Callable[[str, Path], list]:
    """``reader(text, path)`` for ``kind`` "json" or "jsonl", within the row and field limits.

    JSON Lines: the rows (lines that are not blank) are counted before any is parsed, and the
    error names the first line past the limit. JSON: one document, parsed whole (the size limit
    bounds it), then counted. Then every value's length, and a ``RecursionError`` (JSON nested
    thousands deep) becomes a ``DatasetError`` saying so.
    """
    @functools.wraps(reader)
    def read(text: str, path: Path) -> list:
        lines = None
        if kind == "jsonl" and text.count("\n") >= LIMITS.own_dataset_max_rows:
            lines = _data_lines(text)
            if len(lines) > LIMITS.own_dataset_max_rows:
                raise too_many_rows(path, row=lines[LIMITS.own_dataset_max_rows])
        try:
            rows = reader(text, path)
        except RecursionError:
            raise too_deep(path, row=_deep_line(text) if kind == "jsonl" else None) from None
        if not isinstance(rows, list):
            return rows
        if len(rows) > LIMITS.own_dataset_max_rows:
            raise too_many_rows(path, row=LIMITS.own_dataset_max_rows + 1 if kind == "json" else None)
        limit = LIMITS.own_dataset_max_field_chars
        for index, row in enumerate(rows):
            if isinstance(row, dict) and any(value_length(value) > limit for value in row.values()):
                if kind == "jsonl":  # name the line, as the reader does
                    lines = lines or _data_lines(text)
                    number = lines[index] if index < len(lines) else None
                else:
                    number = index + 1
                check_field_lengths(row, path, row_number=number)
        return rows

    return read


def _deep_line(text: str) -> int | None:
    """The first line of a JSON Lines text that is nested too deep to parse."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                json.loads(line)
            except RecursionError:
                return number
            except ValueError:
                continue
    return None


# -- before cleaning: the template's columns --------------------------------------------------------
def check_columns(rows: list[dict], needed: list[str] | tuple[str, ...], path: str | Path) -> None:
    """A ``DatasetError`` unless every row has every field the template needs: checked before cleaning.

    The message lists the columns the file has and the ones the template needs, so nothing is
    cleaned, saved or trained on for a template that cannot fill it. For a CSV the row is 1 (the
    header names the columns of every row); for JSON it is the first row without them.

    Example:
        >>> check_columns([{"prompt": "Hi", "reply": "Hello"}], ["question", "answer"], "chat.csv")
        DatasetError: chat.csv, row 1: the template needs the columns question, answer, but the file has
        the columns prompt, reply
          hint: rename the columns in the file's first line, or write the template with {prompt} and {reply}
    """
    path = Path(path)
    needed = list(needed)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            continue
        missing = [field for field in needed if field not in row]
        if not missing:
            continue
        has = [str(column) for column in row]
        is_csv = path.suffix.lower() == ".csv"
        holder = "the file has" if is_csv else "the first row has" if number == 1 else "this row has"
        problem = (f"the template needs the column{'s' if len(needed) > 1 else ''} {', '.join(needed)}, but "
                   f"{holder} " + (f"the column{'s' if len(has) > 1 else ''} {', '.join(has)}" if has else "none")
                   + (f" (missing: {', '.join(missing)})" if len(missing) < len(needed) else ""))
        guesses = [f"{close[0]!r} for {field!r}" for field in missing
                   if (close := difflib.get_close_matches(field, has, n=1))]
        hint = (f"did you mean {', '.join(guesses)}? " if guesses else "") + (
            "rename the columns in the file's first line" if is_csv else "rename the fields in the file") + (
            f", or write the template with {' and '.join('{' + column + '}' for column in has[:3])}" if has else "")
        raise DatasetError(path, problem, row=1 if is_csv else number, hint=hint)


# -- after cleaning: a report of bounded size ----------------------------------------------------------
def shorten(text: str, limit: int | None = None) -> str:
    """``text`` cut to ``limit`` characters (default ``LIMITS.report_example_chars``), saying how long it was.

    Example:
        >>> shorten("x" * 11_000_000, 5)
        'xxxxx… (11,000,000 characters)'
    """
    limit = LIMITS.report_example_chars if limit is None else limit
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def _shorten_all(value: Any) -> Any:
    if isinstance(value, str):
        return shorten(value)
    if isinstance(value, dict):
        return {key: _shorten_all(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_shorten_all(item) for item in value)
    return value


def cap_report(report: dict) -> dict:
    """A copy of a cleaning report whose examples' texts are cut by ``shorten`` (the counts are untouched)."""
    examples = report.get("examples")
    if not isinstance(examples, dict):
        return report
    return {**report, "examples": {name: _shorten_all(items) for name, items in examples.items()}}


def capped_report(clean_examples: Callable) -> Callable:
    """Wrap ``clean_examples`` so the report it returns keeps examples of a bounded size.

    Three rows with 11 MB answers made a 93 MB report, saved in the store and sent to the page; cut
    to ``LIMITS.report_example_chars`` each, an example still shows what the row looked like.
    """
    @functools.wraps(clean_examples)
    def clean(*args, **kwargs):
        result = clean_examples(*args, **kwargs)
        if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
            return result[0], cap_report(result[1])
        return result

    return clean
