"""The stage 7 page's work on a learner's own file (``dashboard/tasks/stage7.py``), proven in this process.

* a loaded file is kept in the worker, keyed on the lesson file's version and the data file's
  path, modification time and size: a page interaction does not read it again, a saved file is;
* a file past the size limit is refused from ``stat`` before the learner's loader runs
  (files put in ``uploads/`` by hand never met Streamlit's 200 MB upload cap);
* a file without the template's columns fails before anything is cleaned, and the page saves
  no cleaning report for it (AppTest, demo mode).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from dashboard.logic import worker
from dashboard.logic.kernel import lesson_ref
from dashboard.tasks import stage7 as tasks
from lessons.engine import own_files
from lessons.engine.errors import DatasetError
from lessons.engine.paths import lab_home
from lessons.engine.stages import STAGES_BY_KEY

QA_TEMPLATE = "QUESTION: {question}\nANSWER: {answer}\n[END]"
GOOD = "question,answer\nWhy rest meat?,So the juices settle back into it.\nIs raw chicken safe?,No: cook it.\n"


@pytest.fixture
def ref():
    return lesson_ref("stage7", STAGES_BY_KEY["stage7"].reference_file, reference=True)


@pytest.fixture
def loads(ref, monkeypatch) -> list[str]:
    """Every call of the lesson's load_own_dataset, by path."""
    module = worker.lesson(ref)
    real, calls = module.load_own_dataset, []

    def counted(path, **options):
        calls.append(str(path))
        return real(path, **options)

    monkeypatch.setattr(module, "load_own_dataset", counted)
    return calls


def test_a_loaded_file_is_read_once_until_it_is_saved_again(ref, loads, tmp_path):
    """Case 7: every page interaction read the file again (41 s and 3.9 GB for 300 MB)."""
    path = tmp_path / "tips.csv"
    path.write_text(GOOD, encoding="utf-8")
    for _ in range(3):
        assert tasks.load(ref, str(path))["count"] == 2
        assert tasks.clean(ref, str(path), ["question", "answer"])["count"] == 2
    assert loads == [str(path)], "read once for three page runs"
    path.write_text(GOOD + 'How hot should oil be?,"Hot, but never smoking."\n', encoding="utf-8")
    os.utime(path, ns=(10**18, 10**18))
    assert tasks.load(ref, str(path))["count"] == 3 and len(loads) == 2, "saved again: read again"


def test_a_file_past_the_size_limit_never_reaches_the_learners_loader(ref, loads, tmp_path, monkeypatch):
    path = lab_home() / "uploads" / "huge.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        handle.truncate(300_000_000)  # sparse: 300 MB by stat, nothing written
    try:
        with pytest.raises(DatasetError, match=r"the file is 300\.0 MB"):
            tasks.load(ref, str(path))
    finally:
        path.unlink()
    small = tmp_path / "tips.csv"
    small.write_text(GOOD, encoding="utf-8")
    monkeypatch.setattr(own_files, "LIMITS", dataclasses.replace(own_files.LIMITS, own_dataset_max_bytes=10))
    with pytest.raises(DatasetError, match=r"the most a dataset file may be here is 10 bytes"):
        tasks.load(ref, str(small))
    assert loads == []


def test_the_columns_are_checked_before_cleaning(ref, loads, tmp_path, monkeypatch):
    path = tmp_path / "chat.csv"
    path.write_text("prompt,reply\nHow do I put out a grease fire?,Slide a lid over the pan.\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"row 1: the template needs the columns question, answer, but the file "
                                           r"has the columns prompt, reply"):
        tasks.template_columns(ref, str(path), QA_TEMPLATE)
    assert tasks.template_columns(ref, str(path), "ASK: {prompt}\nSAY: {reply}\n[END]") == ["prompt", "reply"]


def test_the_page_saves_no_cleaning_report_for_a_file_without_the_templates_columns(monkeypatch):
    """Case 8: such a file was cleaned and its report saved before formatting failed."""
    from streamlit.testing.v1 import AppTest

    from dashboard import ui
    from lessons.engine.store import Store

    name = f"own-page-{os.getpid()}"
    monkeypatch.setenv("LAB_LEARNER", name)
    monkeypatch.setattr(ui, "DEMO_LEARNER", f"{name}-demo")
    monkeypatch.delenv("LAB_DEMO", raising=False)
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    path = lab_home() / "uploads" / "chat_log.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("prompt,reply\nHow do I put out a grease fire?,Slide a lid over the pan.\n", encoding="utf-8")
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120)
        at.session_state["demo"] = True
        at.run()
        at.session_state["stage7_dataset"] = str(path)
        at.session_state[f"stage7_template:{path}"] = QA_TEMPLATE  # typed by hand: the page proposes PROMPT/REPLY
        at.switch_page("views/stage7.py").run()
        assert not at.exception, [e.value for e in at.exception]
        errors = "\n".join(str(e.value) for e in at.error)
        assert "the template needs the columns question, answer, but the file has the columns prompt, reply" in errors
        assert "Rows kept" not in [m.label for m in at.metric], "nothing was cleaned"
        with Store(learner=f"{name}-demo") as store:
            assert store.result("stage7", "cleaning_report") is None
    finally:
        path.unlink()


# Twenty real recipes as a learner exports them: titles are often one short word.
RECIPE_TITLES = ["Pancakes", "Omelette", "Hummus", "Banana bread", "Tomato soup", "Lentil curry",
                 "Fried rice", "Guacamole", "Roast chicken", "Apple crumble", "Minestrone", "Shakshuka",
                 "Potato salad", "Flapjacks", "Risotto", "Pesto pasta", "Chili con carne", "Scones",
                 "Falafel", "Rice pudding"]


def recipes_csv(path: Path) -> Path:
    lines = ["title,ingredients,directions,serves"]
    for number, title in enumerate(RECIPE_TITLES):
        lines.append(f'{title},"2 eggs, 100 g flour, a pinch of salt","Mix everything well. Cook for '
                     f'{number + 5} minutes, then serve warm.",{number % 4 + 1}')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_page_proposes_a_template_from_the_files_own_columns():
    from dashboard.logic.own_dataset import propose_template, text_columns

    qa = "QUESTION: {question}\nANSWER: {answer}\n[END]"
    assert propose_template(["question", "answer", "source"], qa) == qa, "the lesson's template when it fits"
    assert propose_template(["title", "ingredients", "directions"], qa) == (
        "RECIPE: {title}\nINGREDIENTS: {ingredients}\nDIRECTIONS: {directions}\n[END]"), "recipes: the recipe one"
    assert propose_template(["prompt", "cook_time"], qa) == "PROMPT: {prompt}\nCOOK TIME: {cook_time}\n[END]"
    rows = [{"title": "Tea", "serves": "2", "weight": "1.5", "notes": None}, {"title": "Toast", "serves": "-1"}]
    assert text_columns(rows) == ["title"], "numbers and empty columns are not text to learn from"


def test_rows_removed_as_too_short_are_listed_with_the_field_and_the_setting_that_keeps_them(ref, tmp_path):
    """A 20-recipe file lost 7 real recipes (Pancakes, Omelette, Hummus …) and the page only said "Removed 7"."""
    from dashboard.logic.own_dataset import shortest_keeping_all

    path = recipes_csv(tmp_path / "recipes.csv")
    loaded = tasks.load(ref, str(path))
    assert loaded["template"].startswith("RECIPE: {title}") and loaded["min_chars"] == 10
    fields = ["title", "ingredients", "directions"]
    assert tasks.clean(ref, str(path), fields)["count"] == 20 - sum(len(t) < 10 for t in RECIPE_TITLES)
    removed = tasks.removed_blank_or_short(ref, str(path), fields)
    assert [row["row"] for row in removed] == [n + 1 for n, t in enumerate(RECIPE_TITLES) if len(t) < 10]
    assert {row["field"] for row in removed} == {"title"} and {row["reason"] for row in removed} == {"too_short"}
    assert removed[2]["shortest"] == len("Hummus") and removed[2]["text"].startswith("Hummus · 2 eggs")
    keep_all = shortest_keeping_all(removed)
    assert keep_all == len("Hummus")
    assert tasks.clean(ref, str(path), fields, keep_all)["count"] == 20, "the page's advice keeps every recipe"
    assert tasks.removed_blank_or_short(ref, str(path), fields, keep_all) == []


def test_the_training_job_cleans_the_file_with_the_pages_min_chars(tmp_path):
    """The page showed 20 recipes kept with min_chars 6; the run it starts must train on those 20, not 13."""
    from types import SimpleNamespace

    from lessons.engine import jobs

    path = recipes_csv(tmp_path / "recipes.csv")
    own = {"path": str(path), "template": "RECIPE: {title}\nINGREDIENTS: {ingredients}\nDIRECTIONS: {directions}\n[END]",
           "text_fields": ["title", "ingredients", "directions"]}
    settings = SimpleNamespace(test_size=0.2, seed=42)
    default = jobs.own_dataset_splits(own, settings, reference=True)
    assert len(default["train"]) + len(default["validation"]) == 20 - sum(len(t) < 10 for t in RECIPE_TITLES)
    lowered = jobs.own_dataset_splits({**own, "min_chars": 6}, settings, reference=True)
    assert len(lowered["train"]) + len(lowered["validation"]) == 20
