"""Stage 7 checks, part 2: cleaning — every repair, every removal, and the report that shows the work.

Small fixed rows for each step, then the example data in ``data/own_dataset/``
(read here with the json module alone, so a loader bug cannot fail these checks).
"""
from __future__ import annotations

import copy

from checks.stage7.support import EXAMPLE_COUNTS, TEXT_FIELDS, example_rows
from checks.teacher import call, expect

RICE = {"question": "How long can cooked rice sit out?", "answer": "Cool it within an hour and eat it within a day."}
FRIDGE = {"question": "What temperature should a fridge be?", "answer": "At or below 5 °C (41 °F)."}
SAUTE = {"question": "Can I sauté in a non-stick pan?", "answer": "Yes, on low to medium heat."}
JALAPENO = {"question": "Gloves for a jalapeño?", "answer": "Wash your hands well and don’t touch your eyes."}


def moji(text: str) -> str:
    """The damage itself: UTF-8 bytes read back as Windows-1252 ("café" -> "cafÃ©")."""
    return text.encode("utf-8").decode("cp1252")


def _clean(lesson, rows, **options):
    options.setdefault("text_fields", TEXT_FIELDS)
    result = call(lesson.clean_examples, rows, **options)
    expect(isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list)
           and isinstance(result[1], dict), lesson.clean_examples,
           "it must return two things: the clean rows (a list) and the report (a dict).",
           expected="(clean_rows, report)", got=result)
    clean, report = result
    for key in ("rows_in", "rows_out", "repaired", "removed", "examples"):
        expect(key in report, lesson.clean_examples, f"the report has no {key!r}.",
               expected="keys rows_in, rows_out, repaired, removed, examples", got=sorted(report))
    return clean, report


def test_fix_mojibake(lesson):
    """fix_mojibake turns 'cafÃ©' back into 'café' and leaves text that was fine alone."""
    for good in ("café", "At or below 5 °C.", "Don’t touch your eyes.", "crème fraîche", "jalapeño", "été"):
        got = call(lesson.fix_mojibake, moji(good))
        expect(got == good, lesson.fix_mojibake, f"{moji(good)!r} is {good!r} damaged: repair it.", expected=good,
               got=got, hint="Encode the damaged text with the codec that misread it (cp1252), then decode as "
                             "UTF-8: which bytes did 'Ã©' come from?")
    latin1 = "Á".encode("utf-8").decode("latin-1")  # 'Ã\x81': 0x81 means nothing in Windows-1252
    got = call(lesson.fix_mojibake, latin1)
    expect(got == "Á", lesson.fix_mojibake, f"{latin1!r} is 'Á' read as Latin-1: repair it.", expected="Á", got=got,
           hint="Windows-1252 cannot encode '\\x81', so that round trip fails: is the next codec of "
                "MOJIBAKE_CODECS tried?")
    for fine in ("café", "5 °C", "Don’t", "Plain ASCII text.", "日本の包丁", "", "naïve — crème"):
        got = call(lesson.fix_mojibake, fine)
        expect(got == fine, lesson.fix_mojibake, "text without mojibake must come back unchanged.", expected=fine,
               got=got, hint="When the round trip fails (UnicodeEncodeError, UnicodeDecodeError), what does that "
                             "say about the text?")


def test_clean_repairs_mojibake(lesson):
    """clean_examples repairs mojibake in every text field and counts the rows it repaired."""
    rows = [{"question": moji(SAUTE["question"]), "answer": SAUTE["answer"]},
            {"question": moji(JALAPENO["question"]), "answer": moji(JALAPENO["answer"])},
            dict(RICE), dict(FRIDGE)]
    clean, report = _clean(lesson, rows)
    expect(clean == [SAUTE, JALAPENO, RICE, FRIDGE], lesson.clean_examples,
           "'sautÃ©' and 'jalapeÃ±o' must be repaired, and the good rows left exactly as they were.",
           expected=[SAUTE, JALAPENO, RICE, FRIDGE], got=clean, hint="Is every text field passed through repair_text?")
    expect(report["repaired"].get("mojibake") == 2, lesson.clean_examples,
           "two rows had mojibake (one of them in both fields: a row counts once).",
           expected={"mojibake": 2}, got=report["repaired"])


def test_clean_unescapes_html_entities(lesson):
    """clean_examples turns &amp;, &#39;, &quot; and friends back into the characters they stand for."""
    rows = [{"question": "Salt &amp; pepper first?", "answer": "Salt first, then pepper: it&#39;s easier."},
            {"question": "What does &quot;use by&quot; mean?", "answer": "Eat it by that date, not after."},
            {"question": "How hot is too hot?", "answer": "Above 60 &deg;C bacteria stop growing."},
            dict(RICE)]
    want = [{"question": "Salt & pepper first?", "answer": "Salt first, then pepper: it's easier."},
            {"question": 'What does "use by" mean?', "answer": "Eat it by that date, not after."},
            {"question": "How hot is too hot?", "answer": "Above 60 °C bacteria stop growing."},
            RICE]
    clean, report = _clean(lesson, rows)
    expect(clean == want, lesson.clean_examples, "HTML entities must be turned back into characters.",
           expected=want, got=clean, hint="Which function of the html module knows what &amp; and &#39; mean?")
    expect(report["repaired"].get("html_entities") == 3, lesson.clean_examples,
           "three rows had HTML entities.", expected={"html_entities": 3}, got=report["repaired"])


def test_clean_normalises_whitespace(lesson):
    """clean_examples trims the ends and turns every run of spaces, tabs and line breaks into one space."""
    rows = [{"question": "  How long can cooked rice sit out?  ", "answer": RICE["answer"]},
            {"question": FRIDGE["question"], "answer": "At or below\t5 °C  (41\u00a0°F).\n"},
            {"question": SAUTE["question"], "answer": "Yes,\non low to\r\nmedium heat."},
            dict(JALAPENO)]
    clean, report = _clean(lesson, rows)
    expect(clean == [RICE, FRIDGE, SAUTE, JALAPENO], lesson.clean_examples,
           "stray whitespace must be normalised: no spaces at the ends, one space between words.",
           expected=[RICE, FRIDGE, SAUTE, JALAPENO], got=clean,
           hint="Strip only the ends, and the double spaces, tabs, non-breaking spaces and line breaks stay. "
                "What does str.split() with no argument split on?")
    expect(report["repaired"].get("whitespace") == 3, lesson.clean_examples, "three rows had stray whitespace.",
           expected={"whitespace": 3}, got=report["repaired"])


def test_clean_removes_control_characters(lesson):
    """clean_examples removes control characters such as a NUL byte, and counts the rows it repaired."""
    rows = [{"question": "Can I refreeze\x00 thawed meat?", "answer": "Only if it thawed in the fridge.\x00"},
            {"question": RICE["question"], "answer": RICE["answer"] + "\x08\x1b"}, dict(FRIDGE)]
    want = [{"question": "Can I refreeze thawed meat?", "answer": "Only if it thawed in the fridge."}, RICE, FRIDGE]
    clean, report = _clean(lesson, rows)
    expect(clean == want, lesson.clean_examples, "NUL, backspace and escape are invisible junk: they must go.",
           expected=want, got=clean, hint="Does every text field go through repair_text, and is its last step "
                                          "the text you keep?")
    expect(report["repaired"].get("control_characters") == 2, lesson.clean_examples,
           "two rows had control characters.", expected={"control_characters": 2}, got=report["repaired"],
           hint="Count the rows for every step of REPAIR_STEPS, not only the ones you know by name.")


def test_clean_drops_blank_rows(lesson):
    """clean_examples drops rows with an empty, missing or whitespace-only text field."""
    rows = [dict(RICE), {"question": "", "answer": ""}, {"question": "   ", "answer": "\t"},
            {"question": "What if oil catches fire?", "answer": ""}, {"question": "No answer at all?"},
            {"question": None, "answer": FRIDGE["answer"]}, dict(FRIDGE)]
    clean, report = _clean(lesson, rows)
    expect(clean == [RICE, FRIDGE], lesson.clean_examples,
           "every row with an empty or missing question or answer must go.", expected=[RICE, FRIDGE], got=clean,
           hint="Test each text field after repairing it: is '   ' still blank once the whitespace is gone? "
                "And a field that is missing or None?")
    expect(report["removed"].get("blank") == 5, lesson.clean_examples, "five rows were blank.",
           expected={"blank": 5}, got=report["removed"])


def test_clean_drops_too_short_rows(lesson):
    """clean_examples drops rows with a text field shorter than min_chars, after repairing it."""
    rows = [dict(RICE), {"question": "Knives?", "answer": "Keep them sharp and in a block."},
            {"question": "Is raw chicken safe?", "answer": "No."}, {"question": "ok", "answer": "ok"},
            {"question": "Cold rice?", "answer": "   In the fridge.       "}, dict(FRIDGE)]
    clean, report = _clean(lesson, rows)
    want = [RICE, {"question": "Cold rice?", "answer": "In the fridge."}, FRIDGE]
    expect(clean == want, lesson.clean_examples,
           "with the default min_chars, fields such as 'Knives?', 'No.' and 'ok' are too short to teach anything.",
           expected=want, got=clean, hint="Compare len(value) with min_chars for every text field, after repair.")
    expect(report["removed"].get("too_short") == 3 and report["removed"].get("blank", 0) == 0,
           lesson.clean_examples, "three rows were too short (and none blank).",
           expected={"blank": 0, "too_short": 3}, got=report["removed"])
    clean, report = _clean(lesson, rows, min_chars=20)
    expect(clean == [RICE, FRIDGE], lesson.clean_examples, "with min_chars=20 'In the fridge.' is too short too.",
           expected=[RICE, FRIDGE], got=clean, hint="Is the min_chars argument used, or a fixed number?")


def test_clean_removes_exact_duplicates(lesson):
    """clean_examples keeps the first of identical rows and removes the rest."""
    rows = [dict(RICE), dict(FRIDGE), dict(RICE), dict(SAUTE), dict(RICE), dict(FRIDGE)]
    clean, report = _clean(lesson, rows)
    expect(clean == [RICE, FRIDGE, SAUTE], lesson.clean_examples,
           "each example must appear once, in the order it first appeared.", expected=[RICE, FRIDGE, SAUTE],
           got=clean, hint="Keep the text fields of every row you kept (a tuple fits in a set or dict): "
                           "have you seen these before?")
    expect(report["removed"].get("duplicate") == 3, lesson.clean_examples, "three rows were duplicates.",
           expected={"duplicate": 3}, got=report["removed"])
    same_question = {"question": RICE["question"], "answer": "A different answer to the same question."}
    clean, _ = _clean(lesson, [dict(RICE), same_question])
    expect(clean == [RICE, same_question], lesson.clean_examples,
           "rows that share a question but not the answer are different examples: keep both.",
           expected=[RICE, same_question], got=clean, hint="Is the duplicate key every text field, or only one?")


def test_clean_removes_duplicates_after_repair(lesson):
    """Rows that differ only by mojibake, entities or whitespace are duplicates once repaired."""
    rows = [dict(FRIDGE), {"question": FRIDGE["question"], "answer": moji(FRIDGE["answer"])},
            {"question": moji(SAUTE["question"]), "answer": SAUTE["answer"]}, dict(SAUTE),
            {"question": "Salt &amp; pepper first?", "answer": "Salt first."},
            {"question": "Salt & pepper first?", "answer": "  Salt   first. "}]
    clean, report = _clean(lesson, rows)
    want = [FRIDGE, SAUTE, {"question": "Salt & pepper first?", "answer": "Salt first."}]
    expect(clean == want, lesson.clean_examples,
           "'5 Â°C' and '5 °C' are the same example once repaired: only one may stay.",
           expected=want, got=clean, hint="Do you compare the rows before or after repairing them?")
    expect(report["removed"].get("duplicate") == 3, lesson.clean_examples, "three rows were duplicates after repair.",
           expected={"duplicate": 3}, got=report["removed"])


def test_clean_the_example_data(lesson):
    """Cleaning the example data repairs and removes exactly what data/own_dataset/README.md says."""
    rows = example_rows()
    untouched = copy.deepcopy(rows)
    clean, report = _clean(lesson, rows)
    expect(rows == untouched, lesson.clean_examples, "the rows passed in must not be changed.",
           expected="the input rows as they were", got="rows changed in place",
           hint="Repair a copy of each row (dict(row)), not the row itself.", show_got=False)
    got = {key: report[key] for key in EXAMPLE_COUNTS}
    expect(got == EXAMPLE_COUNTS, lesson.clean_examples,
           "the counts differ from the table in data/own_dataset/README.md.", expected=EXAMPLE_COUNTS, got=got,
           hint="Order: repair every field, then blank, too short, duplicate (a row is removed for its first "
                "reason only). Which count is off?")
    expect(len(clean) == EXAMPLE_COUNTS["rows_out"], lesson.clean_examples, "the number of clean rows is off.",
           expected=EXAMPLE_COUNTS["rows_out"], got=len(clean))
    mess = [(row, marker) for row in clean for value in row.values()
            for marker in ("Ã", "Â", "â€", "&amp;", "&#39;", "&quot;", "&deg;", "  ", "\t", "\n", "\u00a0")
            if marker in value or value != value.strip()]
    expect(not mess, lesson.clean_examples, "some mess is left in the clean rows.", expected="no mess",
           got=mess[:3], hint="Which repair did not run on this field?")
    keys = [tuple(row[field] for field in TEXT_FIELDS) for row in clean]
    expect(len(set(keys)) == len(keys), lesson.clean_examples, "the clean rows still hold duplicates.",
           expected="36 different rows", got=f"{len(set(keys))} different among {len(keys)}")


def test_clean_report_shows_examples(lesson):
    """The report keeps up to MAX_EXAMPLES examples of each repair (before and after) and each removal."""
    rows = example_rows()
    _, report = _clean(lesson, rows)
    examples = report["examples"]
    limit = getattr(lesson, "MAX_EXAMPLES", 3)
    for step in ("mojibake", "html_entities", "whitespace"):
        shown = examples.get(step)
        expect(isinstance(shown, list) and 1 <= len(shown) <= limit, lesson.clean_examples,
               f"the report should show between 1 and {limit} examples of the {step!r} repair.",
               expected=f"examples[{step!r}] = [{{'index', 'field', 'before', 'after'}}, ...]", got=shown)
        for example in shown:
            ok = isinstance(example, dict) and {"index", "field", "before", "after"} <= set(example)
            expect(ok and example["before"] != example["after"]
                   and rows[example["index"]].get(example["field"]) == example["before"], lesson.clean_examples,
                   f"an example of the {step!r} repair must show the row's index, the field, and its text "
                   "before and after (before = the text in the file).",
                   expected="{'index': i, 'field': ..., 'before': rows[i][field], 'after': ...}", got=example)
    for reason in ("blank", "too_short", "duplicate"):
        shown = examples.get(reason)
        expect(isinstance(shown, list) and 1 <= len(shown) <= limit, lesson.clean_examples,
               f"the report should show between 1 and {limit} examples of rows removed as {reason!r}.",
               expected=f"examples[{reason!r}] = [{{'index', 'row'}}, ...]", got=shown)
        for example in shown:
            expect(isinstance(example, dict) and rows[example.get("index", -1)] == example.get("row"),
                   lesson.clean_examples, f"an example of a {reason!r} row must give its index and the row as it was.",
                   expected="{'index': i, 'row': rows[i]}", got=example)
    for example in examples["duplicate"]:
        first = example.get("same_as")
        expect(isinstance(first, int) and first < example["index"], lesson.clean_examples,
               "a duplicate's example must say which earlier row it repeats ('same_as').",
               expected="{'index': i, 'row': ..., 'same_as': an earlier index}", got=example)
