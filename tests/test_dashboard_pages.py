"""Every dashboard page, driven by Streamlit's AppTest: locked and open, learner and demo mode.

Each test is a learner of its own (``LAB_LEARNER``) in the tests' private lab
home, so the store starts empty; ``seed`` writes the check runs an earlier
page would have left. Pages are reached as a person reaches them: the entry
file ``dashboard/app.py`` runs, then ``switch_page``.
"""
from __future__ import annotations

import itertools
import json
import os
import textwrap
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.logic import lesson
from lessons.engine.stages import STAGES, STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from lessons.engine.registry import stage_checks
from tests.records import whole_run

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
_learners = itertools.count()


@pytest.fixture
def learner(monkeypatch) -> str:
    from dashboard import ui

    name = f"pages-{os.getpid()}-{next(_learners)}"
    monkeypatch.setenv("LAB_LEARNER", name)
    monkeypatch.setattr(ui, "DEMO_LEARNER", demo_of(name))  # demo mode's rows, private to this test too
    monkeypatch.delenv("LAB_DEMO", raising=False)
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    return name


def demo_of(learner: str) -> str:
    """The learner whose rows demo mode reads and writes in this test (``"demo"`` in real use)."""
    return f"{learner}-demo"


def open_page(page: str | None = None, *, demo: bool = False, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    at.session_state["demo"] = demo
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def seed(key: str, outcomes: dict[str, str] | None = None, *, learner: str | None = None) -> None:
    """A complete check run of stage ``key`` on the learner file as it is now (default: every check passed)."""
    stage = STAGES_BY_KEY[key]
    results = [{"name": name, "title": f"{name} in words", "outcome": outcome,
                "message": "" if outcome == "passed" else f"{name}: not yet\n  hint: which?"}
               for name, outcome in outcomes.items()] if outcomes else whole_run(key)
    with Store(learner=learner) as store:
        store.record_check_run(key, str(stage.learner_file), file_hash(stage.learner_file), results, complete=True)


def plant(monkeypatch, tmp_path, key: str, code: str, *, name: str = "") -> Path:
    """A learner file for stage ``key`` holding ``code``, in a temporary folder; the pages read ``key``'s code there."""
    from dashboard import ui

    path = tmp_path / (name or f"{key}_planted.py")
    path.write_text(code)
    original = ui.lesson_file
    monkeypatch.setattr(ui, "lesson_file", lambda stage, *, reference: path if stage == key
                        else original(stage, reference=reference))
    return path


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


# -- Home ------------------------------------------------------------------------------------
def test_home_says_where_to_start_and_shows_the_tiers(learner):
    at = open_page()
    assert at.title[0].value == "🍳 LoRA Kitchen"
    assert "Start stage 1" in texts(at.markdown) and "lessons/stage1_concepts.py" in texts(at.markdown)
    assert ".venv/bin/python -m pytest checks/stage1" in texts(at.code), "a command that works from a fresh shell"
    progress = at.dataframe[0].value
    assert list(progress["stage"]) == [stage.label for stage in STAGES]
    assert set(progress["status"]) == {"not started"} and list(progress["page"][:2]) == ["open", "locked"]
    assert "No tier reached yet" in texts(at.info)
    labels = [expander.label for expander in at.expander]
    assert any(label.startswith("⬜ Complete — 0/3") for label in labels)
    assert any(label.startswith("⬜ Exceptional") for label in labels)


def test_home_follows_the_learners_progress(learner):
    seed("stage1")
    seed("stage2", {"test_one": "passed", "test_two": "failed"})
    at = open_page()
    assert "Finish stage 2" in texts(at.markdown) and ".venv/bin/python -m pytest checks/stage2" in texts(at.code)
    progress = at.dataframe[0].value
    assert list(progress["status"][:3]) == ["passed", "failing", "not started"]
    whole = len(stage_checks("stage1"))
    assert list(progress["checks passed"][:2]) == [f"{whole}/{whole}", "1/2"]
    assert list(progress["page"][:3]) == ["open", "open", "locked"]
    assert len(charts(at)) == 1, "the checks-per-stage chart"
    tier_rows = [frame.value for frame in at.dataframe[1:]]
    core = next(frame for frame in tier_rows if "Checks of stages 1–5" in " ".join(frame["criterion"]))
    assert "still to pass: stage 2, 3, 4A, 4B, 5" in " ".join(core["your evidence"])


# -- locks ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", STAGES[1:], ids=lambda stage: stage.key)
def test_a_stage_page_is_locked_until_the_stage_before_passes(learner, stage):
    previous = STAGES[STAGES.index(stage) - 1]
    at = open_page(stage.key)
    assert at.title[0].value.startswith(f"Stage {stage.label} — ")
    warning = texts(at.warning)
    assert "locked" in warning and "Finish stage 1 first" in warning, "nothing passed yet: stage 1 comes first"
    assert "🔒 This page" not in warning, "one lock icon: the box's own"
    assert ".venv/bin/python -m pytest checks/stage1" in texts(at.code), "a command that works from a fresh shell"
    assert "Your checks" not in texts(at.subheader), "a locked page shows no lesson work"

    for earlier in STAGES[:STAGES.index(previous)]:
        seed(earlier.key)
    seed(previous.key, {"test_good": "passed", "test_bad": "failed"})
    at = open_page(stage.key)
    warning = texts(at.warning)
    assert f"Finish stage {previous.label} first" in warning and "has checks still failing" in warning
    assert f".venv/bin/python -m pytest checks/{previous.key}" in texts(at.code)
    assert "test_bad in words" in texts(at.markdown) and "test_good in words" not in texts(at.markdown)

    seed(previous.key)
    at = open_page(stage.key)
    assert not at.warning or "locked" not in texts(at.warning)
    assert ["Your checks", "Results of your code"] == [s.value for s in at.subheader][:2]
    lesson_text = lesson.lesson_text(stage).markdown
    if lesson_text:
        assert lesson_text.splitlines()[0] in texts(at.markdown), "the lesson is the module docstring"
    assert "Not started" in texts(at.info), "this stage's own checks have not run yet"
    for _, title in lesson.declared_checks(stage):
        assert f"**{title}** — *not started*" in texts(at.markdown)
    assert "Your results appear here once every check of this stage passes" in texts(at.info)
    assert f".venv/bin/python -m pytest checks/{stage.key}" in texts(at.code)
    assert len(at.text_area) == len([b for b in at.button if b.label == "Save answer"]) >= 2


def test_demo_mode_opens_every_page_and_shows_no_check_results_of_the_local_learner(learner):
    seed("stage7", {"test_mine": "failed"})  # the learner using this machine has a failing stage 7 check
    at = open_page("stage7", demo=True)
    assert "Demo mode" in texts(at.info) and "locked" not in texts(at.warning)
    assert "Your checks" not in texts(at.subheader) and "The checks (demo mode)" in texts(at.subheader)
    assert "test_mine in words" not in texts(at.markdown) + texts(at.code), "not the local learner's results"
    assert "Failing:" not in texts(at.info)
    assert "this area shows the checks of the stage on the reference solution" in texts(at.info)
    assert ".venv/bin/python -m pytest checks/stage7 --reference" in texts(at.code)
    for _, title in lesson.declared_checks(STAGES_BY_KEY["stage7"]):
        assert f"**{title}**" in texts(at.markdown)
    assert "press “▶ Train on this file”" in texts(at.info), "stage 7's button, not stage 4B's"
    assert "▶ Train on this file" in [button.label for button in at.button]


def test_the_sidebar_toggle_turns_demo_mode_on_and_it_survives_a_page_switch(learner):
    at = open_page()
    assert at.toggle[0].value is False
    at.toggle[0].set_value(True).run()
    assert at.session_state["demo"] is True
    at.switch_page("views/stage5.py").run()
    assert "locked" not in texts(at.warning) and at.session_state["demo"] is True


# -- the checks area -------------------------------------------------------------------------------
def test_check_results_show_the_learners_message_first_and_fold_the_traceback(learner):
    stage = STAGES_BY_KEY["stage1"]
    with Store() as store:
        store.record_check_run("stage1", str(stage.learner_file), file_hash(stage.learner_file), [
            {"name": "test_a", "title": "show_tokens gives ids", "outcome": "failed",
             "message": "show_tokens: the ids are wrong.\n  expected: [1, 2]\n  got:      [2, 1]"},
            {"name": "test_b", "title": "generate_text returns new text", "outcome": "todo",
             "message": "not implemented yet — open lessons/stage1_concepts.py:180 (generate_text)"},
            {"name": "test_c", "title": "pick_device picks", "outcome": "error",
             "message": "Traceback (most recent call last):\n  File x\nE   RuntimeError: boom\n" + "more\n" * 20},
            {"name": "test_d", "title": "count_parameters counts", "outcome": "passed", "message": ""},
        ], complete=True)
    at = open_page("stage1")
    markdown = texts(at.markdown)
    assert "❌ **show_tokens gives ids** — *failing*" in markdown
    assert "📝 **generate_text returns new text** — *todo*" in markdown
    assert "💥 **pick_device picks** — *error*" in markdown and "✅ **count_parameters counts** — *passed*" in markdown
    code = texts(at.code)
    assert "show_tokens: the ids are wrong.\n  expected: [1, 2]" in code
    assert "RuntimeError: boom" in code
    boxes = [box for box in at.code if "show_tokens: the ids are wrong" in box.value or "boom" in box.value]
    assert boxes and all(box.proto.wrap_lines for box in boxes), "a long line wraps, it does not run off the box"
    full = [e for e in at.expander if e.label == "Full report"]
    assert len(full) == 1 and "Traceback" in texts(full[0].code)
    assert "Failing: 1 of 4 checks pass." in texts(at.info)


def test_the_run_checks_button_runs_them_and_shows_the_output(learner, monkeypatch):
    calls = []

    def fake_run_checks(stage, **kwargs):
        calls.append(stage.key)
        seed(stage.key)  # what a whole run of the stage records
        return lesson.CheckCommandResult(stage.check_command, 0, "2 passed in 0.1s")

    monkeypatch.setattr(lesson, "run_checks", fake_run_checks)
    at = open_page("stage1")
    at.button(key="stage1_run_checks").click().run()
    assert calls == ["stage1"]
    assert any(e.label.startswith("Output of `.venv/bin/python -m pytest checks/stage1` (all passed)")
               for e in at.expander)
    assert "2 passed in 0.1s" in texts(at.code)
    assert f"Passed: all {len(stage_checks('stage1'))} checks pass" in texts(at.success)


# -- hints and answers -------------------------------------------------------------------------------
def test_hints_are_revealed_one_step_at_a_time_and_recorded(learner):
    at = open_page("stage1")
    pick = lesson.hint_exercises(STAGES_BY_KEY["stage1"])[0]
    assert pick.key == "pick_device#1"
    at.button(key="stage1_reveal_pick_device#1_hint").click().run()
    assert "**Hint**" in texts(at.markdown) and pick.exercise.hints[0] in texts(at.markdown)
    assert "**The full solution**" not in texts(at.markdown)
    at.button(key="stage1_reveal_pick_device#1_partial").click().run()
    assert pick.exercise.partial[0] in texts(at.code)
    at.button(key="stage1_reveal_pick_device#1_solution").click().run()
    assert "return \"cuda\"" in texts(at.code)
    with Store() as store:
        assert [row["level"] for row in store.reveals("stage1")] == ["hint", "partial", "solution"]
    at = open_page("stage1")  # a reload keeps what was revealed
    assert "**The full solution**" in texts(at.markdown)


def test_hints_say_so_when_the_reference_was_withheld(learner, monkeypatch):
    monkeypatch.setattr(lesson, "reference_available", lambda stage: False)
    at = open_page("stage1")
    assert "reference solutions were withheld" in texts(at.info)
    assert not [b for b in at.button if b.label == "Show a hint"]


def test_a_handout_reveals_the_hint_and_the_partial_but_no_full_solution(learner, monkeypatch):
    from dataclasses import replace

    withheld = [replace(e, solution=[]) for e in lesson.exercises_for("stage1_concepts")]  # as in a handout
    monkeypatch.setattr(lesson, "reference_available", lambda stage: False)
    monkeypatch.setattr(lesson, "handout_hints_available", lambda stage: True)
    monkeypatch.setattr(lesson, "exercises_for", lambda module: withheld)
    at = open_page("stage1")
    assert "full solutions were withheld" in texts(at.caption)
    at.button(key="stage1_reveal_pick_device#1_hint").click().run()
    at.button(key="stage1_reveal_pick_device#1_partial").click().run()
    assert withheld[0].partial[0] in texts(at.code)
    assert not [b for b in at.button if b.label == "Show the full solution"]


def test_an_answer_is_saved_in_the_store_and_shown_again(learner):
    at = open_page("stage1")
    at.text_area(key="stage1_answer_q1").set_value("Cinnamon became two tokens.")
    [b for b in at.button if b.label == "Save answer"][0].click().run()
    assert "Saved." in texts(at.success)
    with Store() as store:
        assert store.answers("stage1") == {("stage1", "q1"): "Cinnamon became two tokens."}
    at = open_page("stage1")
    assert at.text_area(key="stage1_answer_q1").value == "Cinnamon became two tokens."


# -- results --------------------------------------------------------------------------------------------
def test_learner_code_that_raises_is_a_friendly_error_not_a_crash(learner):
    seed("stage1")  # passed, on the generated file whose blanks are still ___
    at = open_page("stage1")
    errors = texts(at.error)
    assert "not filled in yet — open lessons/stage1_concepts.py:" in errors
    assert "load_model_and_tokenizer" in errors


def test_stage1_results_in_demo_mode_tokens_and_the_before_picture(learner):
    with Store(learner=demo_of(learner)) as demo_store:  # demo mode reads and writes the "demo" learner's rows
        demo_store.save_generation("stage1", "before", str(Path(__file__).resolve().parents[1] / ".lab" / "models" /
                                                          "SmolLM2-135M-Instruct"),
                                   "RECIPE: Tomato Soup\nINGREDIENTS:", " 4 tomatoes",
                                   settings={"max_new_tokens": 60, "temperature": 0.0, "top_p": 1.0, "seed": 0})
    at = open_page("stage1", demo=True)
    assert not at.error, texts(at.error)
    assert (".lab/models/SmolLM2-135M-Instruct · 60 new tokens at most · temperature 0 (greedy) · top-p 1 · seed 0"
            in texts(at.caption).splitlines()), "a path in the project and the settings in words, not a dict"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "134,515,008" and metrics["Device"] == "cpu"
    assert any(line.startswith("**26 tokens**") for line in texts(at.markdown).splitlines())
    assert len(charts(at)) == 1, "the token chart"
    assert "RECIPE: Tomato Soup\nINGREDIENTS: 4 tomatoes" in texts(at.code)

    at.text_area(key="stage1_text").set_value("Isombe").run()
    assert "**3 tokens**" in texts(at.markdown)


def test_the_before_picture_button_generates_saves_and_shows_it(learner, monkeypatch, tmp_path):
    from lessons.engine.modules import load_stage_module

    reference = load_stage_module("stage1", reference=True)
    quick = STAGES_BY_KEY["stage1"].reference_file.read_text() + textwrap.dedent('''

        def generate_text(model, tokenizer, prompt, **settings):  # a generation that takes no time
            return f" (continued: {prompt.splitlines()[0]})"
        ''')
    plant(monkeypatch, tmp_path, "stage1", quick)
    at = open_page("stage1", demo=True)
    assert "No “before” picture yet" in texts(at.info)
    assert "press “Generate the before picture” above. On a 2-core CPU it takes 2 to 3 minutes" in texts(at.info), \
        "the button's own name, and the time it takes (measured: docs/benchmarks.md)"
    assert at.button(key="stage1_generate_before").label == "Generate the before picture"
    at.button(key="stage1_generate_before").click().run()
    with Store(learner=demo_of(learner)) as store:
        saved = store.generations("stage1", "before")
    assert [g["prompt"] for g in saved] == reference.BEFORE_PROMPTS
    assert saved[0]["settings"]["temperature"] == 0.0
    assert "RECIPE: Banana Pancakes\nINGREDIENTS: (continued: RECIPE: Banana Pancakes)" in texts(at.code)
    assert at.run().button(key="stage1_generate_before").label == "Generate it again"


@pytest.mark.parametrize(("page", "metric", "n_charts"), [
    ("stage2", "Raw recipes", 2), ("stage3", "Median length", 1), ("stage7", "Rows kept", 1)])
def test_data_stage_results_in_demo_mode(learner, page, metric, n_charts):
    at = open_page(page, demo=True)
    assert not at.error, texts(at.error)
    assert metric in [m.label for m in at.metric]
    assert len(charts(at)) >= n_charts


def test_stage2_results_draw_the_mess_and_a_clean_split(learner):
    at = open_page("stage2", demo=True)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Raw recipes"] == "3,129" and metrics["Kept by the reference's filter"] == "3,011"
    assert metrics["Titles in both"] == "0"
    specs = [chart.proto.spec for chart in charts(at)]
    assert any("After filtering: recipes removed, by rule (3,011 kept)" in spec for spec in specs)
    assert not any("removed and kept" in spec for spec in specs), "no kept bar that dwarfs the removals"
    assert "RECIPE: " in texts(at.code) and "[END]" in texts(at.code)
    with Store(learner=demo_of(learner)) as store:
        assert store.result("stage2", "data_mess_report")["kept"] == 3011


# -- 4B: training in the background ------------------------------------------------------------------
def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s in vain")


def test_stage4b_starts_a_background_run_follows_it_and_cancels_it(learner, monkeypatch):
    from lessons.engine import jobs

    monkeypatch.setenv(jobs.TRAINER_ENV, "tests.dashboard_fake_training")  # the job process trains nothing real
    monkeypatch.setenv("FAKE_STEP_S", "0.3")
    at = open_page("stage4b", demo=True)
    assert not at.error, texts(at.error)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trainable parameters with these settings"] == "460,800", "r=8 on q_proj and v_proj"
    assert "No training run yet: choose the settings and press “▶ Start training”." in texts(at.info)
    assert "▶ Start training" in [button.label for button in at.button], "the text names the button there is"
    at.select_slider(key="stage4b_rank").set_value(16).run()
    assert {m.label: m.value for m in at.metric}["Trainable parameters with these settings"] == "921,600"

    at.number_input(key="stage4b_max_steps").set_value(300)
    at.button(key="stage4b_start").click().run()
    with Store(learner=demo_of(learner)) as store:  # demo mode trains with the reference code, as learner "demo"
        (run,) = store.runs("train")
        assert run["config"]["rank"] == 16 and run["config"]["max_steps"] == 300 and run["config"]["reference"]
        wait_for(lambda: len(store.metrics(run["id"])) >= 2)
    at.run()
    assert f"Run `{run['id']}` — 🏃 running" in texts(at.markdown)
    assert at.button(key="stage4b_start").disabled, "one run at a time"
    assert len(charts(at)) >= 1, "the live loss chart"
    assert at.get("progress"), "the progress bar"

    at = open_page("stage4b", demo=True)  # a reload re-attaches to the running job
    assert f"Run `{run['id']}` — 🏃 running" in texts(at.markdown)
    at.button(key=f"stage4b_cancel_{run['id']}").click().run()
    assert jobs.cancel_requested(run["id"])
    with Store(learner=demo_of(learner)) as store:
        wait_for(lambda: jobs.job_status(run["id"], store=store)["status"] == "cancelled")
    at.run()
    assert "cancelled at step" in texts(at.warning)
    assert at.button(key=f"stage4b_resume_{run['id']}")
    assert not at.button(key="stage4b_start").disabled


# -- 5 and 6 ------------------------------------------------------------------------------------------
def test_stage5_without_a_trained_run_says_where_to_train(learner, monkeypatch):
    from dashboard import ui

    monkeypatch.setattr(ui, "finetuned_choices", lambda store: [])
    at = open_page("stage5", demo=True)
    assert not at.error, texts(at.error)
    assert "train one on the 4B page" in texts(at.info)


def test_stage5_draws_perplexity_and_the_side_by_side_from_the_store(learner, monkeypatch):
    from dashboard.results import stage5

    monkeypatch.setattr(stage5, "finetuned_choices", lambda store: [])
    seed("stage4b", learner=learner)
    seed("stage5", learner=learner)  # passed: the learner's own results are drawn
    with Store() as store:
        store.save_evaluation("stage5", "perplexity_before", 17.5, run_id="run-1")
        store.save_evaluation("stage5", "perplexity_after", 12.5, run_id="run-1")
        store.put_result("stage5", "evaluation", {
            "run": "run-1", "perplexity_before": 17.5, "perplexity_after": 12.5,
            "comparisons": [{"prompt": "RECIPE: Tomato Soup\nINGREDIENTS:", "base": " 1. Tomato soup is",
                             "finetuned": " 4 tomatoes; salt\nDIRECTIONS: Cook.\n[END]",
                             "base_stopped": False, "finetuned_stopped": True, "base_tokens": 320,
                             "finetuned_tokens": 9}],
            "measures": {"base": {"stop rate": 0.0}, "finetuned": {"stop rate": 1.0}}})
    at = open_page("stage5")
    assert not at.error, texts(at.error)
    assert len(charts(at)) == 2, "perplexity before/after and the measures"
    # a generation without [END] ran out of room: the caption says how much, not "never"
    assert "fine-tuned — stopped at [END]" in texts(at.caption)
    assert "base — no [END] in 320 new tokens" in texts(at.caption)
    assert "DIRECTIONS: Cook.\n[END]" in texts(at.code)


def test_stage6_shows_temperature_and_top_p_on_the_real_model(learner, monkeypatch):
    from dashboard.results import stage6

    monkeypatch.setattr(stage6, "finetuned_choices", lambda store: [])
    at = open_page("stage6", demo=True)
    assert not at.error, texts(at.error)
    assert len(charts(at)) == 2, "the toy logits and the real next-token distribution"
    next_token = json.loads(charts(at)[1].proto.spec)
    assert next_token["title"] == "base: the 8 most probable next tokens" and next_token["height"] <= 450
    assert any("of the 12 most probable tokens can still be drawn" in c for c in texts(at.caption).splitlines())
    at.slider(key="stage6_temperature").set_value(0.0).run()
    assert "base: 1 of the 12 most probable tokens can still be drawn." in texts(at.caption), "greedy keeps one"


# A stage 1 file as small as can be: the page's first calls return at once, no model is loaded.
TINY_STAGE1 = textwrap.dedent('''\
    BEFORE_PROMPTS = ["RECIPE: Toast\\nINGREDIENTS:"]


    def pick_device():
        return "cpu"


    def load_model_and_tokenizer(name=None):
        return "a model", "a tokenizer"


    def count_parameters(model):
        return {"total": 1, "trainable": 1}


    def show_tokens(tokenizer, text):
        return [{"token": "a", "id": 1, "text": "a"}]
    ''')


def test_learner_code_that_hangs_is_stopped_after_its_time_limit(learner, monkeypatch, tmp_path):
    """A load_model_and_tokenizer that never returns: the worker running it is killed at the limit, and not re-run."""
    from dashboard.logic.kernel import shared_kernel
    from dashboard.results import stage1 as stage1_results
    from lessons.engine.jobs import pid_alive

    hanging = TINY_STAGE1.replace('return "a model", "a tokenizer"', "while True:\n        pass")
    plant(monkeypatch, tmp_path, "stage1", hanging, name="stage1_that_hangs.py")
    monkeypatch.setattr(stage1_results, "LOAD_LIMIT_S", 3.0)
    worker = shared_kernel().call("tests.kernel_tasks:whoami", timeout_s=60)
    started = time.monotonic()
    at = open_page("stage1", demo=True)
    elapsed = time.monotonic() - started
    errors = texts(at.error)
    assert ("While loading the model with load_model_and_tokenizer: your code did not finish within 3 s, so the "
            "worker process running it was stopped.") in errors, errors
    assert "stage1_that_hangs.py:" in errors, "it names the file and line where the code was busy"
    assert "The dashboard itself is fine" in errors
    assert elapsed < 30, f"the page waited {elapsed:.0f} s"
    assert not pid_alive(worker), "the worker that ran the endless loop is gone"
    assert at.button(key="worker_restart_1").label == "🔄 Restart the worker"

    started = time.monotonic()
    at.run()  # a rerun on the same file does not wait out the limit again
    assert "went past its 3 s limit last time, on this same version of your file" in texts(at.error)
    assert time.monotonic() - started < 3

    at.button(key="worker_restart_1").click().run()  # restarted: it is given its chance again, and stopped again
    assert "did not finish within 3 s" in texts(at.error)


def test_learner_code_that_calls_os_exit_ends_the_worker_not_the_page(learner, monkeypatch, tmp_path):
    from dashboard.logic.kernel import shared_kernel
    from lessons.engine.jobs import pid_alive

    exiting = TINY_STAGE1.replace('return [{"token": "a", "id": 1, "text": "a"}]', "import os\n    os._exit(0)")
    plant(monkeypatch, tmp_path, "stage1", exiting, name="stage1_exits.py")
    at = open_page("stage1", demo=True)
    errors = texts(at.error)
    assert ("While splitting your text with show_tokens: your code called os._exit(0), which ended the worker "
            "process that runs it.") in errors, errors
    assert "stage1_exits.py:" in errors and "os._exit(0)" in errors
    assert {m.label: m.value for m in at.metric}["Parameters"] == "1", "what ran before it is drawn"
    assert "No “before” picture yet" in texts(at.info), "and the rest of the page after it"
    first = shared_kernel().pid
    assert first is None or not pid_alive(first)

    at.button(key="worker_restart_1").click().run()
    assert "The worker was restarted" in texts(at.toast)
    assert {m.label: m.value for m in at.metric}["Parameters"] == "1", "a fresh worker ran the page again"
    assert "your code called os._exit(0)" in texts(at.error), "up to the same line, which ended it the same way"


def test_home_and_the_sidebar_offer_the_lab_report_and_it_is_the_learners(learner):
    from dashboard import ui

    at = open_page()
    buttons = [element.proto.label for element in at.get("download_button")]
    assert buttons.count("⬇ Export my lab report (HTML)") == 2, "one on Home, one in the sidebar"
    with Store() as store:
        store.save_answer("stage2", "q1", "Mostly <ref> tags.")
    page = ui.lab_report_html()  # what the button hands over when pressed
    assert f"<strong>{learner}</strong>" in page and "Mostly &lt;ref&gt; tags." in page
    assert "Tokenization examples</h4>" in page, "the base tokenizer is loaded for the examples"


def test_stage4b_in_demo_mode_shows_the_bench_this_machine_saved(learner):
    """`python -m lessons bench` saves under the machine's learner; demo mode's page still draws it."""
    bench = {"device": "CPU test", "table": "baseline ... lab ... lab/baseline 1.86x",
             "arms": {"baseline": {"padding_share": 0.236, "tokens_per_s": 165.0, "wall_seconds": 153.0,
                                   "stop_rate": 0.0, "useful_tokens": 1000},
                      "lab": {"padding_share": 0.042, "tokens_per_s": 307.0, "wall_seconds": 96.0,
                              "stop_rate": 0.75, "useful_tokens": 1100}},
             "ladder": [{"rung": "float32, padded to 256, random batches (baseline)", "tokens_per_s": 127.0}]}
    at = open_page("stage4b", demo=True)
    assert "No benchmark yet" in texts(at.info)
    with Store(learner=learner) as store:
        store.put_result("stage4b", "bench", bench)
    at = open_page("stage4b", demo=True)
    assert "No benchmark yet" not in texts(at.info)
    assert "lab/baseline 1.86x" in texts(at.code) and "CPU test" in texts(at.caption)


def test_stage4a_says_which_button_runs_the_step(learner):
    at = open_page("stage4a", demo=True)
    assert not at.error, texts(at.error)
    assert "Press “Run one step on the real model” to run one step" in texts(at.info)
    assert at.button(key="stage4a_run").label == "Run one step on the real model", "the text names the button there is"


def test_in_demo_mode_the_button_runs_the_checks_on_the_reference(learner, monkeypatch):
    calls = []

    def fake_run_checks(stage, **kwargs):
        calls.append((stage.key, kwargs.get("extra_args")))
        return lesson.CheckCommandResult(f"{stage.check_command} --reference", 0, "17 passed in 6.7s")

    monkeypatch.setattr(lesson, "run_checks", fake_run_checks)
    at = open_page("stage2", demo=True)
    at.button(key="stage2_run_reference_checks").click().run()
    assert calls == [("stage2", ["--reference"])]
    assert any(e.label.startswith("Output of `.venv/bin/python -m pytest checks/stage2 --reference` (all passed)")
               for e in at.expander)
