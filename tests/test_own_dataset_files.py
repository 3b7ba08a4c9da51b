"""The example own dataset (``data/own_dataset/``) and the reference stage 7 loader, proven.

* the three files hold the same rows, and every kind of mess the README lists, in the rows it lists;
* the README's table of cleaning counts is what the reference ``clean_examples`` does,
  and what the learner check ``test_clean_the_example_data`` demands;
* broken files (made here, in a temporary folder) stop with a ``DatasetError``
  that names the file, the row and the problem.
"""
from __future__ import annotations

import csv
import json
import re

import pytest

from checks.stage7.support import EXAMPLE_COUNTS, EXAMPLE_DIR, TEXT_FIELDS
from lessons.engine.errors import DatasetError
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
