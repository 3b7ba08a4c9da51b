"""Stage 7 checks, part 3: the template, the splits stages 3-5 train on, and the prompts to compare models."""
from __future__ import annotations

from checks.stage7.support import QA_TEMPLATE
from checks.teacher import call, expect, fail
from lessons.engine.constants import END_MARKER
from lessons.engine.todo import NotImplementedYet

GREASE = {"question": "How do I put out a grease fire?", "answer": "Turn off the heat and slide a lid over the pan."}
# 20 different, already clean rows: small so a split is quick, enough for a 0.25 validation share.
ROWS = [{"question": f"Safety question number {i}?", "answer": f"The careful answer to question {i}.",
         "source": f"notes page {i}"} for i in range(20)]


def _template_error(lesson, row, template, expected):
    """format_example must refuse: return the error (a ValueError) or fail like a teacher."""
    try:
        got = lesson.format_example(row, template)
    except NotImplementedYet:
        raise
    except ValueError as error:
        return error
    except Exception as error:  # noqa: BLE001
        fail(lesson.format_example, f"{expected}: raise a clear ValueError (TemplateError is one), "
             f"not {type(error).__name__}.", expected="TemplateError('... which field / what is wrong ...')",
             got=f"{type(error).__name__}: {error}",
             hint="template.format(**row) raises a bare KeyError; check the fields first and say what is wrong.")
    fail(lesson.format_example, f"{expected}: it returned a text instead of raising an error.",
         expected="TemplateError(...)", got=got)


def test_format_example_fills_the_template(lesson):
    """format_example fills each {field} of the template from the row and ends with [END]."""
    got = call(lesson.format_example, dict(GREASE, source="notes"), QA_TEMPLATE)
    want = f"QUESTION: {GREASE['question']}\nANSWER: {GREASE['answer']}\n{END_MARKER}"
    expect(got == want, lesson.format_example, "the template was not filled in as written.", expected=want, got=got,
           hint="str.format(**row) fills {question} and {answer}; extra fields such as 'source' are ignored.")
    template = "TIP ({topic}): {tip}\n" + END_MARKER
    got = call(lesson.format_example, {"topic": "knives", "tip": "Let a falling knife fall."}, template)
    want = "TIP (knives): Let a falling knife fall.\n" + END_MARKER
    expect(got == want, lesson.format_example, "any template with named fields must work, not only questions.",
           expected=want, got=got, hint="Are the field names read from the template, or written into your code?")


def test_format_example_names_a_missing_field(lesson):
    """A template asking for a field the row lacks stops with an error naming that field."""
    error = _template_error(lesson, {"question": GREASE["question"], "anwser": GREASE["answer"]}, QA_TEMPLATE,
                            "the template names {answer}, which the row does not have")
    expect("answer" in str(error).replace("anwser", ""), lesson.format_example,
           "the error must name the missing field.", expected="a message containing 'answer'", got=str(error),
           hint="Which field of the template is not among the row's keys? Say it.")


def test_format_example_requires_the_end_marker(lesson):
    """A template that does not end with [END] is refused: the model would never learn to stop."""
    error = _template_error(lesson, GREASE, "QUESTION: {question}\nANSWER: {answer}",
                            f"the template does not end with {END_MARKER}")
    expect(END_MARKER in str(error), lesson.format_example, f"the error must say that {END_MARKER} is missing.",
           expected=f"a message containing {END_MARKER!r}", got=str(error))
    _template_error(lesson, GREASE, f"QUESTION: {{question}}\n{END_MARKER}\nANSWER: {{answer}}",
                    f"{END_MARKER} in the middle of the template is not the end")


def test_prompt_for_stops_before_the_last_field(lesson):
    """prompt_for gives the formatted text up to the last field's label: what the model must continue."""
    got = call(lesson.prompt_for, GREASE, QA_TEMPLATE)
    want = f"QUESTION: {GREASE['question']}\nANSWER:"
    expect(got == want, lesson.prompt_for, "the prompt must stop right after the last field's label, no space.",
           expected=want, got=got, hint="Cut the template where '{' + its last field starts; a trailing space "
                                        "becomes a token the model rarely saw before a word.")
    template = "TIP ({topic}) for {level} cooks: {tip}\n" + END_MARKER
    got = call(lesson.prompt_for, {"topic": "knives", "level": "new", "tip": "Let a falling knife fall."}, template)
    want = "TIP (knives) for new cooks:"
    expect(got == want, lesson.prompt_for, "with three fields the prompt stops before the last one, the third.",
           expected=want, got=got, hint="Which field is the last one of template_fields(template), however many "
                                        "there are?")


def test_prepare_own_splits(lesson):
    """prepare_own_splits makes train and validation splits with 'text' and 'title', like stage 2, and no leak."""
    from datasets import DatasetDict

    splits = call(lesson.prepare_own_splits, ROWS, QA_TEMPLATE, test_size=0.25, seed=3)
    expect(isinstance(splits, DatasetDict) and set(splits) == {"train", "validation"}, lesson.prepare_own_splits,
           "it must return a datasets.DatasetDict with the splits 'train' and 'validation' (what stage 3 tokenizes).",
           expected="DatasetDict({'train': ..., 'validation': ...})", got=splits)
    for name in ("train", "validation"):
        expect({"text", "title"} <= set(splits[name].column_names), lesson.prepare_own_splits,
               f"the {name!r} split needs a 'text' and a 'title' column, as stage 2's splits have.",
               expected=["text", "title"], got=splits[name].column_names)
    train, validation = list(splits["train"]["text"]), list(splits["validation"]["text"])
    expect(len(validation) == 5 and len(train) == 15, lesson.prepare_own_splits,
           "with 20 rows and test_size=0.25, validation gets 5 rows and training the other 15.",
           expected={"train": 15, "validation": 5}, got={"train": len(train), "validation": len(validation)},
           hint="Does every row go to exactly one split? A validation row trained on is a leak: its loss lies.")
    everything = sorted(train + validation)
    want = sorted(f"QUESTION: {row['question']}\nANSWER: {row['answer']}\n{END_MARKER}" for row in ROWS)
    expect(everything == want, lesson.prepare_own_splits,
           "together the splits must hold every row once, formatted with the template (and none in both).",
           expected=want[:2], got=everything[:2], hint="Is each row formatted with format_example? Could a row "
                                                      "land in both splits?")
    titles = dict(zip(train + validation, list(splits["train"]["title"]) + list(splits["validation"]["title"])))
    wrong = [(text, title) for text, title in titles.items() if title != text.split("\n")[0][len("QUESTION: "):]]
    expect(not wrong, lesson.prepare_own_splits, "each 'title' should be the template's first field (the question).",
           expected="the row's question", got=wrong[:2], hint="Without a title_field, which field is the first "
                                                               "that template_fields(template) lists?")
    named = call(lesson.prepare_own_splits, ROWS, QA_TEMPLATE, test_size=0.25, seed=3, title_field="source")
    got = sorted(list(named["train"]["title"]) + list(named["validation"]["title"]))
    want = sorted(row["source"] for row in ROWS)
    expect(got == want, lesson.prepare_own_splits, "with title_field='source' each title is the row's 'source'.",
           expected=want[:3], got=got[:3], hint="Is the title_field argument used when it is given?")
    again = call(lesson.prepare_own_splits, ROWS, QA_TEMPLATE, test_size=0.25, seed=3)
    expect(list(again["validation"]["text"]) == validation, lesson.prepare_own_splits,
           "the same seed must give the same split.", expected=validation, got=list(again["validation"]["text"]),
           hint="Is the seed passed on to the shuffle?")
    other = call(lesson.prepare_own_splits, ROWS, QA_TEMPLATE, test_size=0.25, seed=4)
    expect(sorted(other["validation"]["text"]) != sorted(validation), lesson.prepare_own_splits,
           "a different seed should give a different split.", expected="another validation set",
           got=list(other["validation"]["text"]))


def test_comparison_prompts(lesson):
    """comparison_prompts gives prompts from the validation rows, their answers, and one recipe prompt."""
    splits = call(lesson.prepare_own_splits, ROWS, QA_TEMPLATE, test_size=0.25, seed=3)
    validation = set(list(splits["validation"]["text"]))
    got = call(lesson.comparison_prompts, ROWS, QA_TEMPLATE, n=3, test_size=0.25, seed=3)
    expect(isinstance(got, list) and all(isinstance(p, dict) and {"kind", "prompt", "expected"} <= set(p)
                                         for p in got), lesson.comparison_prompts,
           "it must return a list of {'kind', 'prompt', 'expected'} dicts.",
           expected="[{'kind': 'own', 'prompt': ..., 'expected': ...}, ...]", got=got)
    own = [p for p in got if p["kind"] == "own"]
    recipe = [p for p in got if p["kind"] == "recipe"]
    expect(len(own) == 3 and len(recipe) == 1, lesson.comparison_prompts,
           "n=3 prompts from your data and one recipe prompt.", expected="3 'own' and 1 'recipe'",
           got=[p["kind"] for p in got])
    for prompt in own:
        text = f"{prompt['prompt']} {prompt['expected']}\n{END_MARKER}"
        expect(prompt["prompt"].endswith("ANSWER:") and text in validation, lesson.comparison_prompts,
               "each prompt must come from a validation row (never trained on), cut before its answer, with the "
               "answer as 'expected'.", expected="one of the validation texts, cut after 'ANSWER:'", got=prompt,
               hint="Do you split with the same test_size and seed as prepare_own_splits?")
    expect(recipe[0]["prompt"].startswith("RECIPE:"), lesson.comparison_prompts,
           "the recipe prompt should start like stage 2's format.", expected="'RECIPE: ...\\nINGREDIENTS:'",
           got=recipe[0]["prompt"])
