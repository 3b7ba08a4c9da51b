"""Stage 7 checks, part 1: loading your own file, and saying clearly what is wrong with a bad one.

Real samples: the example data in ``data/own_dataset/`` (the same 49 rows as
CSV, JSON and JSON Lines). Broken files are written to a temporary folder.
"""
from __future__ import annotations

import codecs
import json

import pytest

from checks.stage7.support import EXAMPLE_DIR, EXAMPLE_STEM, TEXT_FIELDS, dataset_error, example_rows
from checks.teacher import call, expect

GOOD_CSV = "question,answer\nWhy rest meat?,So the juices settle back into it.\n"


def _expect_rows(lesson, path, want, what):
    got = call(lesson.load_own_dataset, path, required_columns=TEXT_FIELDS)
    expect(isinstance(got, list) and all(isinstance(row, dict) for row in got), lesson.load_own_dataset,
           f"{what} must load as a list of dicts, one per row.", expected="[{'question': ..., 'answer': ...}, ...]",
           got=got)
    expect(len(got) == len(want), lesson.load_own_dataset,
           f"{what} has {len(want)} rows (blank and messy ones included: cleaning comes later).",
           expected=len(want), got=len(got), hint="Does the loader skip or merge rows it should keep as they are?")
    for number, (row, wanted) in enumerate(zip(got, want), start=1):
        expect(row == wanted, lesson.load_own_dataset, f"row {number} of {what} came back different "
               "(the loader must keep every value exactly as the file has it).", expected=wanted, got=row,
               hint="Is anything stripped, repaired or converted while loading? That is clean_examples' job.")
    return got


@pytest.mark.parametrize("extension", ["csv", "json", "jsonl"])
def test_loads_the_example_data(lesson, extension):
    """load_own_dataset reads the example data as CSV, JSON and JSON Lines: the same 49 rows each time."""
    path = EXAMPLE_DIR / f"{EXAMPLE_STEM}.{extension}"
    _expect_rows(lesson, path, example_rows(), path.name)
    _expect_rows(lesson, str(path), example_rows(), f"{path.name} given as a str")


def test_loads_a_csv_saved_by_a_spreadsheet(lesson, tmp_path):
    """load_own_dataset reads a spreadsheet's CSV: byte-order mark, CRLF line ends, quoted commas and line breaks."""
    path = tmp_path / "from_excel.CSV"
    text = ('question, answer\r\n'
            'Salt or pepper first?,"Salt, then pepper."\r\n'
            '"Two lines?","Yes:\nthis value has two."\r\n'  # a line break inside a cell is LF alone
            '\r\n'
            'Last one?,Nearly done.\r\n')
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # Excel's "CSV UTF-8" starts with a byte-order mark
    want = [{"question": "Salt or pepper first?", "answer": "Salt, then pepper."},
            {"question": "Two lines?", "answer": "Yes:\nthis value has two."},
            {"question": "Last one?", "answer": "Nearly done."}]
    got = call(lesson.load_own_dataset, path, required_columns=TEXT_FIELDS)
    expect(isinstance(got, list) and len(got) == 3 and all(isinstance(row, dict) for row in got),
           lesson.load_own_dataset, "this CSV has 3 rows (an empty line is not a row).", expected=want, got=got,
           hint="Did the byte-order mark end up in the first column's name? Decode with 'utf-8-sig'.")
    expect([sorted(row) for row in got] == [["answer", "question"]] * 3, lesson.load_own_dataset,
           "the column names should be 'question' and 'answer' exactly.", expected=["answer", "question"],
           got=sorted(got[0]), hint="A spreadsheet may write a byte-order mark first, and a space after a comma.")
    expect(got == want, lesson.load_own_dataset, "the values were not read as the file has them.",
           expected=want, got=got, hint="Let the csv module handle quotes: a quoted value may hold commas and "
                                       "line breaks.")


def test_rejects_a_file_that_is_not_utf8(lesson, tmp_path):
    """A file saved as Windows-1252 stops with a DatasetError naming the file, the row and the byte."""
    path = tmp_path / "old_laptop.csv"
    path.write_bytes("question,answer\nWhy rest meat?,So it stays juicy.\nCan I flambé?,Only with care.\n"
                     .encode("cp1252"))
    error = dataset_error(lesson.load_own_dataset, path, expected="'é' saved as the single byte 0xE9 is not UTF-8",
                          hint="Which error does bytes.decode('utf-8') raise, and which of its attributes says where?")
    message = str(error)
    expect(path.name in message, lesson.load_own_dataset, "the message must name the file.",
           expected=f"a message containing {path.name!r}", got=message)
    expect("row 3" in message, lesson.load_own_dataset, "the message must say which row (line) holds the bad byte.",
           expected="a message containing 'row 3'", got=message,
           hint="How many b'\\n' bytes come before error.start? Lines count from 1.")
    expect("0xe9" in message.lower(), lesson.load_own_dataset,
           "the message must show the byte that is not UTF-8.", expected="a message containing '0xE9'", got=message,
           hint="f'0x{byte:02X}' writes a byte in hexadecimal.")
    path.write_bytes("question,answer\nCan I flambé?,Only with care.\n".encode("cp1252"))
    error = dataset_error(lesson.load_own_dataset, path, expected="the byte 0xE9 on row 2 is not UTF-8")
    expect("row 2" in str(error), lesson.load_own_dataset, "the message must say which row (line) holds the bad byte.",
           expected="a message containing 'row 2'", got=str(error),
           hint="One b'\\n' comes before the bad byte: which line is it on, counting from 1?")


# The first bytes of a real PNG image (its signature and header): what a photo renamed to .csv starts with.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"


def test_names_a_file_that_is_not_text(lesson, tmp_path):
    """A picture renamed to .csv is named as a picture; UTF-16 text (Notepad's 'Unicode') loads like UTF-8."""
    path = tmp_path / "photo.csv"
    path.write_bytes(PNG)
    error = dataset_error(lesson.load_own_dataset, path, expected="a PNG image renamed to .csv is not a dataset",
                          hint="Does load_own_dataset read the file with read_utf8? Its given first line knows "
                               "images, spreadsheets and UTF-16.")
    expect("PNG" in str(error) and "Windows-1252" not in str(error), lesson.load_own_dataset,
           "the message must say what the file really is, not guess at an encoding.",
           expected="a message containing 'PNG image'", got=str(error),
           hint="read_utf8's given first line (own_files.read_dataset_bytes) says it: is its error let through?")
    path = tmp_path / "notepad.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + GOOD_CSV.encode("utf-16-le"))
    got = call(lesson.load_own_dataset, path, required_columns=TEXT_FIELDS)
    want = [{"question": "Why rest meat?", "answer": "So the juices settle back into it."}]
    expect(got == want, lesson.load_own_dataset, "a UTF-16 file with its byte-order mark holds the same rows as "
           "its UTF-8 twin.", expected=want, got=got,
           hint="read_utf8 gets its bytes from own_files.read_dataset_bytes, which turns UTF-16 into UTF-8: "
                "does your loader read the file some other way?")


def test_names_the_broken_csv_row(lesson, tmp_path):
    """A CSV row with an unquoted comma (too many values) stops with an error naming that row."""
    path = tmp_path / "tips.csv"
    path.write_text("question,answer\nWhy rest meat?,So it stays juicy.\nFirst?,Second.\n"
                    "Salt or pepper?,Salt, then pepper.\n", encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="row 4 has three values for two columns")
    expect(path.name in str(error) and "row 4" in str(error), lesson.load_own_dataset,
           "the message must name the file and the row as a spreadsheet numbers it (the header is row 1).",
           expected=f"a message containing {path.name!r} and 'row 4'", got=str(error))
    path.write_text('question,answer\nWhy rest meat?,"So it stays juicy.\nFirst?,Second.\n', encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="a quote opened on row 2 is never closed")
    expect(path.name in str(error) and "row 2" in str(error), lesson.load_own_dataset,
           "a quote that is never closed must be reported on the row where it opens.",
           expected=f"a message containing {path.name!r} and 'row 2'", got=str(error),
           hint="csv.reader(..., strict=True) raises csv.Error; reader.line_num says how far it read.")


def test_names_the_broken_jsonl_line(lesson, tmp_path):
    """A JSON Lines file with a broken line stops with an error naming that line; so does a line that is no object."""
    path = tmp_path / "tips.jsonl"
    good = json.dumps({"question": "Why rest meat?", "answer": "So it stays juicy."})
    path.write_text(f"{good}\n\n{{\"question\": \"Broken?\", \"answer\": }}\n{good}\n", encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="line 3 is not valid JSON",
                          hint="Parse one line at a time, and count the lines from 1, blank lines included.")
    expect(path.name in str(error) and "row 3" in str(error), lesson.load_own_dataset,
           "the message must name the file and the broken line as 'row 3' (blank lines count: an editor shows them).",
           expected=f"a message containing {path.name!r} and 'row 3'", got=str(error),
           hint="enumerate(text.splitlines(), start=...)?")
    path.write_text(f"{good}\n[\"a list\", \"not a row\"]\n", encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="line 2 is a list, not an object with named fields",
                          hint="isinstance(item, dict) tells an object from a list or a number.")
    expect("row 2" in str(error), lesson.load_own_dataset, "the message must name the line that is not an object.",
           expected="a message containing 'row 2'", got=str(error))


def test_names_the_problem_in_a_json_file(lesson, tmp_path):
    """A JSON file with a syntax error names the line; one that is not a list of objects says so."""
    path = tmp_path / "tips.json"
    path.write_text('[\n  {"question": "Why rest meat?", "answer": "So it stays juicy."}\n'
                    '  {"question": "Comma?", "answer": "Missing above."}\n]\n', encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="a comma is missing before line 3")
    expect(path.name in str(error) and "line 3" in str(error), lesson.load_own_dataset,
           "the message must name the file and the line of the syntax error.",
           expected=f"a message containing {path.name!r} and 'line 3'", got=str(error))
    path.write_text('{"rows": [{"question": "Why?", "answer": "Because."}]}', encoding="utf-8")
    dataset_error(lesson.load_own_dataset, path, expected="the file holds an object, not a list of rows")
    path.write_text('[{"question": "Why rest meat?", "answer": "So it stays juicy."}, "oops"]', encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected="item 2 of the list is a string, not a row")
    expect("row 2" in str(error), lesson.load_own_dataset, "the message must say which row is not an object.",
           expected="a message containing 'row 2'", got=str(error))


@pytest.mark.parametrize("name, content", [
    ("empty.csv", ""), ("spaces.jsonl", "  \n\n"), ("header_only.csv", "question,answer\n"), ("nothing.json", "[]"),
], ids=["empty", "only_whitespace", "only_a_header", "empty_list"])
def test_rejects_a_file_without_rows(lesson, tmp_path, name, content):
    """An empty file, or one with no rows (only a header, an empty list), stops with a DatasetError."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, expected=f"{name} holds no rows ({content!r})",
                          hint="After reading: is the text empty? Did the reader give any rows at all?")
    expect(name in str(error), lesson.load_own_dataset, "the message must name the file.",
           expected=f"a message containing {name!r}", got=str(error))
    # The message and its hint must fit the kind of file: a CSV has a header and rows, a JSON file holds objects.
    said = str(error).replace(str(path), "")
    if name == "header_only.csv":
        expect("header" in said, lesson.load_own_dataset,
               "this CSV has its header line and nothing below it: the message must say so.",
               expected="a message saying the file has only a header", got=str(error),
               hint="Which kind of file has a header? When it gives no rows, what was in it?")
    foreign = ["object"] if path.suffix == ".csv" else ["header", "column names"]
    wrong = [word for word in foreign if word in said]
    expect(not wrong, lesson.load_own_dataset,
           f"the message speaks of {' and '.join(map(repr, wrong))}, which a {path.suffix} file does not have.",
           expected=f"a message (and hint) about a {path.suffix} file", got=str(error),
           hint="Is the message chosen for the kind of file it is about (kind), or the same words for every kind?")


def test_rejects_an_unknown_file_type(lesson, tmp_path):
    """A file type the loader cannot read (.txt, .xlsx) stops with a DatasetError naming it."""
    for name in ("notes.txt", "sheet.xlsx"):
        path = tmp_path / name
        path.write_text(GOOD_CSV, encoding="utf-8")
        error = dataset_error(lesson.load_own_dataset, path, expected=f"it cannot read {path.suffix} files",
                              hint="Look the extension up in FILE_TYPES before reading anything.")
        expect(name in str(error) and path.suffix in str(error).replace(str(path), ""), lesson.load_own_dataset,
               "the message must name the file and, after it, the extension it cannot read.",
               expected=f"a message containing {name!r}, then {path.suffix!r}", got=str(error),
               hint="The file has an extension: is it the one named in the problem?")


def test_checks_the_required_columns(lesson, tmp_path):
    """A missing column named in required_columns stops with an error naming the column (and its row)."""
    path = tmp_path / "typo.csv"
    path.write_text("question,anwser\nWhy rest meat?,So it stays juicy.\n", encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, required_columns=TEXT_FIELDS,
                          expected="the header says 'anwser', not 'answer'",
                          hint="Which names in required_columns are not among the row's keys?")
    expect(path.name in str(error) and "answer" in str(error).replace("anwser", ""), lesson.load_own_dataset,
           "the message must name the file and the missing column.",
           expected=f"a message containing {path.name!r} and 'answer'", got=str(error))
    expect("row 1" in str(error), lesson.load_own_dataset,
           "in a CSV the column names are on row 1, the header: that is the row to name.",
           expected="a message containing 'row 1'", got=str(error),
           hint="Which line of the file would you open to fix a column's name?")
    path = tmp_path / "gap.jsonl"
    path.write_text('{"question": "Why rest meat?", "answer": "So it stays juicy."}\n'
                    '{"question": "And the answer?"}\n', encoding="utf-8")
    error = dataset_error(lesson.load_own_dataset, path, required_columns=TEXT_FIELDS,
                          expected="row 2 has no 'answer'")
    expect("row 2" in str(error) and "answer" in str(error), lesson.load_own_dataset,
           "for JSON Lines every row is checked: the message must name the row without the column.",
           expected="a message containing 'row 2' and 'answer'", got=str(error))
    got = call(lesson.load_own_dataset, path)
    expect(isinstance(got, list) and len(got) == 2, lesson.load_own_dataset,
           "without required_columns, rows with fewer fields load as they are.", expected="2 rows", got=got)
