"""The example own dataset (``data/own_dataset/``) and the reference stage 7 loader, proven.

* the three files hold the same rows, and every kind of mess the README lists, in the rows it lists;
* the README's table of cleaning counts is what the reference ``clean_examples`` does,
  and what the learner check ``test_clean_the_example_data`` demands;
* broken files (made here, in a temporary folder) stop with a ``DatasetError``
  that names the file, the row and the problem;
* bad input costs little and is explained right (``lessons/engine/own_files.py``): a file past the
  size, row or field limit (simulated with a sparse file or a lowered limit, never written in full),
  a file that is no text, UTF-16/32, CR-only lines, JSON nested too deep, a NUL byte, a file
  without the template's columns.
"""
from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import io
import json
import re
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from checks.stage7.support import EXAMPLE_COUNTS, EXAMPLE_DIR, TEXT_FIELDS
from lessons.engine import jobs, own_files
from lessons.engine.errors import DatasetError
from lessons.engine.limits import LIMITS
from lessons.engine.modules import load_stage_module

README = EXAMPLE_DIR / "README.md"
FILES = {kind: EXAMPLE_DIR / f"kitchen_safety.{kind}" for kind in ("csv", "json", "jsonl")}
QA_TEMPLATE = "QUESTION: {question}\nANSWER: {answer}\n[END]"


@pytest.fixture(scope="module")
def stage7():
    return load_stage_module("stage7", reference=True)


@pytest.fixture(scope="module")
def rows():
    """The rows as the standard library reads them, without the lesson's loader."""
    return [json.loads(line) for line in FILES["jsonl"].read_text(encoding="utf-8").splitlines() if line.strip()]


def readme_counts() -> dict:
    """The "What cleaning must do" table: ``{"rows_in": 49, "repaired": {...}, "removed": {...}, ...}``."""
    counts: dict = {}
    for key, number in re.findall(r"\|\s*`(rows_in|rows_out|repaired\.\w+|removed\.\w+)`\s*\|\s*(\d+)\s*\|",
                                  README.read_text(encoding="utf-8")):
        group, _, name = key.partition(".")
        if name:
            counts.setdefault(group, {})[name] = int(number)
        else:
            counts[group] = int(number)
    return counts


def readme_rows(mess: str) -> list[int]:
    """The row numbers the "The mess, row by row" table gives for one kind of mess."""
    match = re.search(rf"^\|\s*{re.escape(mess)}[^|]*\|\s*([\d, ]+)\|", README.read_text(encoding="utf-8"), re.M)
    assert match, f"README has no row for {mess!r}"
    return [int(n) for n in match.group(1).split(",")]


def test_the_three_files_hold_the_same_rows(rows):
    with FILES["csv"].open(encoding="utf-8", newline="") as handle:
        from_csv = list(csv.DictReader(handle))
    from_json = json.loads(FILES["json"].read_text(encoding="utf-8"))
    assert 40 <= len(rows) <= 60
    assert from_csv == from_json == rows
    assert all(set(row) == set(TEXT_FIELDS) for row in rows)
    for path in FILES.values():
        path.read_bytes().decode("utf-8")  # strictly UTF-8, no byte-order mark
        assert not path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_the_reference_loader_reads_all_three_the_same(stage7, rows):
    for path in FILES.values():
        assert stage7.load_own_dataset(path, required_columns=TEXT_FIELDS) == rows


def test_the_readme_counts_are_what_cleaning_does(stage7, rows):
    counts = readme_counts()
    assert counts == EXAMPLE_COUNTS, "README table and checks/stage7/support.py disagree"
    for kind, path in FILES.items():
        clean, report = stage7.clean_examples(stage7.load_own_dataset(path), text_fields=TEXT_FIELDS)
        assert {key: report[key] for key in counts} == counts, kind
        assert len(clean) == counts["rows_out"]
        assert counts["rows_in"] - sum(counts["removed"].values()) == counts["rows_out"]
    for step in ("mojibake", "html_entities", "whitespace"):
        assert counts["repaired"][step] > 0, f"the example data must exercise {step}"
    for reason in ("blank", "too_short", "duplicate"):
        assert counts["removed"][reason] > 0, f"the example data must exercise {reason}"


def test_the_readme_names_the_rows_of_each_mess(stage7, rows, monkeypatch):
    monkeypatch.setattr(stage7, "MAX_EXAMPLES", len(rows))  # keep every example, not only the first three
    _, report = stage7.clean_examples(rows, text_fields=TEXT_FIELDS)
    found = {name: [example["index"] + 1 for example in examples] for name, examples in report["examples"].items()}
    assert readme_rows("mojibake") == found["mojibake"]
    assert readme_rows("HTML entities") == found["html_entities"]
    assert readme_rows("stray whitespace") == found["whitespace"]
    assert readme_rows("blank rows") == found["blank"]
    assert readme_rows("too-short rows") == found["too_short"]
    duplicates = {example["index"] + 1: example["row"] for example in report["examples"]["duplicate"]}
    exact = [n for n, row in duplicates.items() if row in rows[: n - 1]]
    after_repair = [n for n in duplicates if n not in exact]
    assert readme_rows("exact duplicates") == exact
    assert readme_rows("duplicates only after repair") == after_repair
    moji_twins = [n for n in after_repair if n in found["mojibake"]]
    assert len(moji_twins) >= 2, "the data must hold duplicates that differ only by mojibake"


def test_cleaning_leaves_no_mess_and_keeps_good_text(stage7, rows):
    clean, _ = stage7.clean_examples(rows, text_fields=TEXT_FIELDS)
    for row in clean:
        for value in row.values():
            assert not re.search(r"Ã|Â|â€|&\w+;|&#\d+;|\s{2}|[\t\n\u00a0]", value), value
            assert value == value.strip() and len(value) >= stage7.MIN_CHARS
    assert len({tuple(row.values()) for row in clean}) == len(clean)
    untouched = [row for row in rows if row in clean]
    assert any("°" in row["answer"] for row in untouched) and any("’" in row["answer"] for row in untouched), \
        "some good non-ASCII text must be there to prove the repairs leave it alone"
    again, report = stage7.clean_examples(clean, text_fields=TEXT_FIELDS)
    assert again == clean, "cleaning clean rows must change nothing"
    assert sum(report["repaired"].values()) == 0 and sum(report["removed"].values()) == 0


def test_the_clean_rows_become_training_splits(stage7, rows):
    clean, _ = stage7.clean_examples(rows, text_fields=TEXT_FIELDS)
    splits = stage7.prepare_own_splits(clean, QA_TEMPLATE, test_size=0.2, seed=42)
    train, validation = list(splits["train"]["text"]), list(splits["validation"]["text"])
    assert len(train) + len(validation) == len(clean) and not set(train) & set(validation)
    assert all(text.startswith("QUESTION: ") and text.endswith("\n[END]") for text in train + validation)
    prompts = stage7.comparison_prompts(clean, QA_TEMPLATE, test_size=0.2, seed=42)
    own = [p for p in prompts if p["kind"] == "own"]
    assert own and all(f"{p['prompt']} {p['expected']}\n[END]" in validation for p in own)


# -- broken files: each one stops with the file, the row and the problem ------------------
BROKEN = [
    # name, bytes, what the message must contain
    ("cp1252.csv", "question,answer\nFlambé?,Only with the fan off.\n".encode("cp1252"), ["row 2", "0xE9", "UTF-8"]),
    ("cp1252.jsonl", '{"question": "ok"}\n\n{"question": "Crème?"}\n'.encode("cp1252"), ["row 3", "0xE8"]),
    ("comma.csv", b"question,answer\nSalt or pepper?,Salt, then pepper.\n", ["row 2", "3 values", "2 columns"]),
    ("quote.csv", b'question,answer\nWhy?,"Because.\nNext?,Never read.\n', ["row 2", "not valid CSV"]),
    ("no_name.csv", b"question,\nWhy?,Because.\n", ["row 1", "column 2"]),
    ("syntax.json", b'[\n {"question": "Why?"}\n {"question": "Comma?"}\n]', ["line 3", "not valid JSON"]),
    ("object.json", b'{"data": [{"question": "Why?"}]}', ["not a list", "'data'"]),
    ("number.json", b"42", ["int", "not a list"]),
    ("item.json", b'[{"question": "Why?"}, ["a", "list"]]', ["row 2", "list"]),
    ("syntax.jsonl", b'{"question": "Why?"}\n{"question": "Broken\n', ["row 2", "not valid JSON"]),
    ("item.jsonl", b'{"question": "Why?"}\n"just text"\n', ["row 2", "str"]),
    ("empty.csv", b"", ["empty"]),
    ("blank.json", b" \n\t\n", ["empty"]),
    ("header.csv", b"question,answer\n", ["no rows", "header"]),
    ("nothing.json", b"[]", ["no rows"]),
    ("nothing.jsonl", b"\n\n\n", ["empty"]),
    ("notes.txt", b"question,answer\nWhy?,Because.\n", ["'.txt'"]),
    ("no_extension", b"question,answer\nWhy?,Because.\n", ["no extension"]),
]


@pytest.mark.parametrize("name, content, words", BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_file_names_the_file_row_and_problem(stage7, tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n  hint: " in message or name in ("number.json",), f"no hint in {message!r}"


def test_missing_files_and_columns(stage7, tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        stage7.load_own_dataset(tmp_path / "nowhere.csv")
    path = tmp_path / "typo.csv"
    path.write_text("question,anwser\nWhy rest meat?,So it stays juicy.\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"row 1: missing the column 'answer'.*\n  hint: did you mean 'anwser'"):
        stage7.load_own_dataset(path, required_columns=TEXT_FIELDS)
    path = tmp_path / "gap.json"
    path.write_text('[{"question": "Q?", "answer": "A."}, {"question": "Q2?", "answer": "A2."}, {"question": "Q3"}]',
                    encoding="utf-8")
    with pytest.raises(DatasetError, match=r"row 3: missing the column 'answer'"):
        stage7.load_own_dataset(path, required_columns=TEXT_FIELDS)
    assert len(stage7.load_own_dataset(path)) == 3


def test_robust_reading(stage7, tmp_path):
    """Byte-order mark, CRLF, spaces after commas in the header, whitespace-only rows, .ndjson."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfquestion, answer\r\nWhy?,\"Because, well.\"\r\n  ,  \r\n   \r\n\r\n")
    assert stage7.load_own_dataset(path, required_columns=TEXT_FIELDS) == [
        {"question": "Why?", "answer": "Because, well."}, {"question": "  ", "answer": "  "},
        {"question": "", "answer": ""}]  # a line of spaces alone is a blank row, for cleaning to count
    path = tmp_path / "lines.ndjson"
    path.write_text('{"question": "Why?", "answer": 1}\n', encoding="utf-8")
    rows = stage7.load_own_dataset(path)
    assert rows == [{"question": "Why?", "answer": 1}]
    clean, report = stage7.clean_examples(rows + [{"question": None, "answer": "x" * 20}], text_fields=TEXT_FIELDS,
                                          min_chars=1)
    assert clean == [{"question": "Why?", "answer": "1"}] and report["removed"]["blank"] == 1


def test_templates(stage7):
    row = {"question": "Why rest meat?", "answer": "So it stays juicy."}
    assert stage7.format_example(row, QA_TEMPLATE + "\n") == "QUESTION: Why rest meat?\nANSWER: So it stays juicy.\n[END]"
    assert stage7.prompt_for(row, QA_TEMPLATE) == "QUESTION: Why rest meat?\nANSWER:"
    assert stage7.template_fields("A {x} B {y} {x} {{literal}}\n[END]") == ["x", "y"]
    for template, words in [("Q: {question}\n[END]\n{answer}", "[END]"), ("Q: {}\n[END]", "named"),
                            ("Q: {question}\nA: {anwser}\n[END]", "'anwser'")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            stage7.format_example(row, template)
    assert issubclass(stage7.TemplateError, ValueError)
    with pytest.raises(Exception, match="at least 2"):
        stage7.prepare_own_splits([row], QA_TEMPLATE)


# -- bad input: a bounded cost, and the right explanation (lessons/engine/own_files.py) --------
def lowered(monkeypatch, **limits):
    """Lower some of LIMITS for one test, so "too big" is a few bytes, not 300 MB."""
    monkeypatch.setattr(own_files, "LIMITS", dataclasses.replace(own_files.LIMITS, **limits))


def no_reading(monkeypatch):
    """Fail the test if any file's bytes or text are read: a refusal must come from stat alone."""
    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{self} was read")
    monkeypatch.setattr(Path, "read_bytes", refuse)
    monkeypatch.setattr(Path, "read_text", refuse)


def test_a_300_mb_file_is_refused_from_its_size_before_it_is_read(stage7, tmp_path, monkeypatch):
    """Case 7: a 300 MB CSV cost 41 s and 3.9 GB. A sparse file has the size and no data, so nothing is written."""
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:
        handle.truncate(300_000_000)
    no_reading(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    assert time.perf_counter() - started < 1.0
    message = str(caught.value)
    assert message.startswith(f"{path}: the file is 300.0 MB; the most a dataset file may be here is "
                              f"{LIMITS.own_dataset_max_bytes / 1e6:,.1f} MB"), message
    assert "own_dataset_max_bytes" in message and "\n  hint: " in message
    with pytest.raises(DatasetError, match="300.0 MB"):  # a job (or a file put in uploads/ by hand): the same
        jobs.own_dataset_splits({"path": str(path)}, None, reference=True)


def test_a_file_just_over_a_lowered_size_limit(stage7, tmp_path, monkeypatch):
    path = tmp_path / "tips.csv"
    path.write_bytes(b"question,answer\n" + b"Why rest meat?,So it stays juicy.\n" * 3)  # 118 bytes
    lowered(monkeypatch, own_dataset_max_bytes=117)
    with pytest.raises(DatasetError, match=r"the file is 118 bytes; the most a dataset file may be here is 117 bytes"):
        stage7.load_own_dataset(path)
    lowered(monkeypatch, own_dataset_max_bytes=118)
    assert len(stage7.load_own_dataset(path)) == 3


@pytest.mark.parametrize("name, content, row", [
    # a broken row after the limit: reading stopped at the limit, so the limit is what is reported
    ("many.csv", "question,answer\n" + "Q?,A.\n" * 4 + 'Broken?,"never closed\n', 5),
    ("many.jsonl", '{"q": "Q?"}\n\n' * 4 + '{"broken": \n', 7),
    ("many.json", json.dumps([{"q": "Q?"}] * 4), 4),
], ids=["csv", "jsonl", "json"])
def test_rows_are_counted_while_reading_and_stop_at_the_limit(stage7, tmp_path, monkeypatch, name, content, row):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    lowered(monkeypatch, own_dataset_max_rows=3)
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, row {row}: more than 3 rows, the most a dataset may have here"), message
    assert "own_dataset_max_rows" in message
    lowered(monkeypatch, own_dataset_max_rows=4)
    if name == "many.json":
        assert len(stage7.load_own_dataset(path)) == 4


def test_the_cleaning_report_keeps_examples_of_bounded_size(stage7):
    """Case 7: three rows with 11 MB answers made a 93 MB report. Each text in an example is cut, and says so."""
    huge = "Stir. " * 200_000  # 1.2 MB each: enough to prove the cut, small enough for a test
    rows = [{"question": f"Question {i}, stirred?", "answer": f"{huge}  {i}"} for i in range(3)]
    rows += [{"question": "Question 0, stirred?", "answer": f"{huge}  0"}, {"question": "", "answer": huge}]
    clean, report = stage7.clean_examples(rows, text_fields=TEXT_FIELDS)
    assert len(clean) == 3 and clean[0]["answer"] == f"{huge.strip()} 0", "the rows themselves are not cut"
    assert report["repaired"]["whitespace"] == 5 and report["removed"] == {"blank": 1, "too_short": 0, "duplicate": 1}
    saved = json.dumps(report)
    assert len(saved) < 20 * LIMITS.report_example_chars, f"a {len(saved):,}-character report"
    example = report["examples"]["whitespace"][0]
    cut = LIMITS.report_example_chars
    assert example["before"] == f"{huge}  0"[:cut] + f"… ({len(huge) + 3:,} characters)"
    assert report["examples"]["duplicate"][0]["row"]["answer"].endswith(f"… ({len(huge) + 3:,} characters)")
    assert report["examples"]["blank"][0]["row"] == {"question": "",
                                                      "answer": huge[:cut] + f"… ({len(huge):,} characters)"}
    assert rows[4]["answer"] == huge, "the caller's rows are not changed"
    assert own_files.shorten("short") == "short"


GOOD = "question,answer\nCan I flambé?,Only with the fan off.\nWhy rest meat?,\"So it stays juicy, they say.\"\n"
GOOD_ROWS = [{"question": "Can I flambé?", "answer": "Only with the fan off."},
             {"question": "Why rest meat?", "answer": "So it stays juicy, they say."}]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_and_utf32_with_a_byte_order_mark_load_like_utf8(stage7, tmp_path, codec):
    """Case 8: they were "saved as Windows-1252 or Latin-1". The byte-order mark says which they are."""
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
           "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[codec]
    for kind, text in [("csv", GOOD), ("jsonl", "".join(json.dumps(row) + "\n" for row in GOOD_ROWS))]:
        path = tmp_path / f"notepad.{kind}"
        path.write_bytes(bom + text.encode(codec))
        assert stage7.load_own_dataset(path, required_columns=TEXT_FIELDS) == GOOD_ROWS


def test_broken_utf16_and_utf16_without_a_mark_say_so(stage7, tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + GOOD.encode("utf-16-le") + "\ud800".encode("utf-16-le", "surrogatepass"))
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    assert str(caught.value).startswith(f"{path}, row 4: the file starts with a UTF-16 (little-endian) byte-order "
                                        "mark, but the bytes at position"), str(caught.value)
    path.write_bytes(GOOD.encode("utf-16-le"))
    with pytest.raises(DatasetError, match=r"looks like UTF-16 text without a byte-order mark") as caught:
        stage7.load_own_dataset(path)
    assert "Windows-1252" not in str(caught.value)


def _png() -> bytes:
    header = b"IHDR" + struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + header + struct.pack(">I", zlib.crc32(header))


def _zip(*names: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


BINARY = [
    ("photo.csv", _png(), "this is a PNG image, not a CSV file"),
    ("photo.json", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "this is a JPEG image, not a JSON file"),
    ("sheet.csv", _zip("[Content_Types].xml", "xl/workbook.xml"), "this is an Excel workbook (.xlsx), not a CSV file"),
    ("letter.csv", _zip("[Content_Types].xml", "word/document.xml"), "this is a Word document (.docx)"),
    ("rows.csv", _zip("rows.csv"), "this is a ZIP archive, not a CSV file"),
    ("paper.jsonl", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "this is a PDF document, not a JSON Lines file"),
    ("rows.jsonl", gzip.compress(b'{"question": "Why?"}\n'), "this is a gzip-compressed file, not a JSON Lines"),
    ("old.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "an old-style Office file (.xls or .doc)"),
    ("noise.csv", bytes(range(256)) * 8, "this is binary data, not a CSV file"),
]


@pytest.mark.parametrize("name, content, words", BINARY, ids=[case[0] for case in BINARY])
def test_a_file_that_is_not_text_is_named_for_what_it_is(stage7, tmp_path, name, content, words):
    """Case 8: a PNG renamed .csv was "saved as Windows-1252 or Latin-1"."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and words in message, message
    assert "Windows-1252" not in message and "\n  hint: " in message


def test_cr_only_line_endings_are_read_like_any_other(stage7, tmp_path):
    """Case 8: a file from an old Mac showed csv's raw "new-line character seen in unquoted field"."""
    path = tmp_path / "old_mac.csv"
    path.write_bytes(GOOD.replace("\n", "\r").encode("utf-8") + b'"Two\rlines?",Yes: one value.\r')
    rows = stage7.load_own_dataset(path, required_columns=TEXT_FIELDS)
    assert rows == GOOD_ROWS + [{"question": "Two\rlines?", "answer": "Yes: one value."}]
    path.write_bytes(b"question,answer\rWhy?,Because.\rBroken?,3,values\r")
    with pytest.raises(DatasetError, match=r", row 3: 3 values, but the header names 2 columns"):
        stage7.load_own_dataset(path)  # and the row numbers count CR-only lines


@pytest.mark.parametrize("size", [120_000, 10_000_000], ids=["past_our_limit", "past_the_csv_modules_limit"])
def test_a_field_past_the_limit_is_named_with_its_row_not_called_a_broken_quote(stage7, tmp_path, size):
    """Case 8: a 10 MB field said "is a double quote (") opened but never closed?"."""
    path = tmp_path / "long.csv"
    path.write_bytes(b"question,answer\nWhy?,Because.\nLong?," + b"x" * size + b"\n")
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    message = str(caught.value)
    limit = f"{LIMITS.own_dataset_max_field_chars:,}"
    assert message.startswith(f"{path}, row 3: ") and f"the limit of {limit} characters for one field" in message
    assert "is a double quote" not in message and "own_dataset_max_field_chars" in message
    if size == 120_000:
        assert "the value of 'answer' is 120,000 characters long" in message


def test_the_field_limit_is_below_the_csv_modules_own():
    """The csv module refuses a field past 131,072 characters itself; ours must be lower, or its error would lie."""
    assert LIMITS.own_dataset_max_field_chars < csv.field_size_limit()


def test_a_long_field_in_json_lines_names_its_line(stage7, tmp_path, monkeypatch):
    lowered(monkeypatch, own_dataset_max_field_chars=20)
    path = tmp_path / "long.jsonl"
    path.write_text('{"question": "Short?"}\n\n{"question": "' + "x" * 21 + '"}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r", row 3: the value of 'question' is 21 characters long, over the "
                                           r"limit of 20"):
        stage7.load_own_dataset(path)
    path = tmp_path / "long.json"
    path.write_text(json.dumps([{"q": "ok"}, {"q": ["x" * 30]}]), encoding="utf-8")
    with pytest.raises(DatasetError, match=r", row 2: the value of 'q' is 34 characters long"):
        stage7.load_own_dataset(path)


@pytest.mark.parametrize("name, content, row", [
    ("deep.json", "[" * 100_000 + "]" * 100_000, None),
    ("deep.jsonl", '{"question": "Fine?"}\n' + '{"question": ' + "[" * 100_000 + "]" * 100_000 + "}\n", 2),
], ids=["json", "jsonl"])
def test_json_nested_100000_deep_says_so(stage7, tmp_path, name, content, row):
    """Case 8: a bare RecursionError."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        stage7.load_own_dataset(path)
    where = f"{path}, row {row}" if row else f"{path}"
    assert str(caught.value).startswith(f"{where}: nested deeper than about {sys.getrecursionlimit():,} levels")
    assert "a dataset is a list of flat objects" in str(caught.value)


def test_a_nul_byte_does_not_survive_cleaning(stage7, tmp_path):
    """Case 8: control characters are removed, and the rows counted and shown in the report."""
    path = tmp_path / "nul.csv"
    path.write_bytes(b"question,answer\nIs it\x00 safe to refreeze meat?,Only if it thawed in the fridge.\n"
                     b"Why rest meat?,So it stays juicy\x07\x1b[0m.\nHow hot is oil?,Hot enough to burn you badly.\n")
    rows = stage7.load_own_dataset(path, required_columns=TEXT_FIELDS)
    assert "\x00" in rows[0]["question"], "the loader keeps the mess; cleaning repairs it"
    clean, report = stage7.clean_examples(rows, text_fields=TEXT_FIELDS)
    assert [row["question"] for row in clean] == ["Is it safe to refreeze meat?", "Why rest meat?", "How hot is oil?"]
    assert clean[1]["answer"] == "So it stays juicy[0m."
    assert not any(re.search(r"[\x00-\x08\x0e-\x1f\x7f]", value) for row in clean for value in row.values())
    assert report["repaired"]["control_characters"] == 2
    shown = report["examples"]["control_characters"]
    assert [(example["index"], example["field"]) for example in shown] == [(0, "question"), (1, "answer")]
    json_rows = [{"question": "Null\u0000 in JSON, is it kept?", "answer": "No: cleaning removes it."}]
    assert stage7.clean_examples(json_rows, text_fields=TEXT_FIELDS)[0][0]["question"] == "Null in JSON, is it kept?"
    latin1 = "don’t".encode("utf-8").decode("latin-1")  # 'donâ\x80\x99t': C1 codes the mojibake repair needs
    assert stage7.repair_text(latin1)["whitespace"] == "don’t"


def test_a_file_without_the_templates_columns_fails_before_cleaning(stage7, tmp_path, monkeypatch):
    """Case 8: such a file was cleaned, and its report saved, before formatting failed."""
    path = tmp_path / "chat.csv"
    path.write_text("prompt,reply\nHow do I put out a grease fire?,Slide a lid over the pan.\n", encoding="utf-8")
    rows = stage7.load_own_dataset(path)
    with pytest.raises(DatasetError) as caught:
        own_files.check_columns(rows, stage7.template_fields(QA_TEMPLATE), path)
    assert str(caught.value) == (f"{path}, row 1: the template needs the columns question, answer, but the file has "
                                 "the columns prompt, reply\n  hint: rename the columns in the file's first line, "
                                 "or write the template with {prompt} and {reply}")
    path = tmp_path / "typo.jsonl"
    path.write_text('{"question": "Q?", "answer": "A."}\n{"question": "Q2?", "anwser": "A2."}\n', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"row 2: the template needs the columns question, answer, but this row "
                                           r"has the columns question, anwser \(missing: answer\)\n  hint: did you "
                                           r"mean 'anwser' for 'answer'\?"):
        own_files.check_columns(stage7.load_own_dataset(path), ["question", "answer"], path)
    own_files.check_columns(rows, ["prompt", "reply"], path)  # the right columns: no error

    from lessons.engine import modules

    def no_cleaning(*args, **kwargs):
        raise AssertionError("clean_examples ran for a file the template cannot fill")

    real = modules.load_stage_module

    def stage_without_cleaning(key, **options):
        module = real(key, **options)
        module.clean_examples = no_cleaning
        return module

    monkeypatch.setattr(modules, "load_stage_module", stage_without_cleaning)
    with pytest.raises(DatasetError, match="the template needs the columns question, answer"):
        jobs.own_dataset_splits({"path": str(tmp_path / "chat.csv"), "template": QA_TEMPLATE}, None, reference=True)
