"""The dashboard's logic, without Streamlit: lesson text, check status, locks, hints, tiers, class, charts."""
from __future__ import annotations

import ast
import json

import pytest

from dashboard.logic import lesson, stage_data, tiers
from dashboard.logic.charts import (bar_chart, loss_chart, next_token_chart, nice_ticks, readable_token,
                                    runs_loss_chart, token_chart, token_chips_html, visible)
from dashboard.logic.friendly import friendly_error
from dashboard.logic.questions import QUESTIONS
from lessons.engine.stages import STAGES, STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from lessons.engine.todo import NotImplementedYet
from tests.records import whole_run


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite", learner="ada") as opened:
        yield opened


def record(store: Store, key: str, outcomes: dict[str, str] | None = None, *, complete: bool = True,
           current_file: bool = True) -> None:
    """A check run of stage ``key``: ``{check name: outcome}`` (default: every check of the stage passed)."""
    stage = STAGES_BY_KEY[key]
    results = [{"name": name, "title": f"{name} in words", "outcome": outcome,
                "message": "" if outcome == "passed" else f"{name}: wrong\n  hint: why?"}
               for name, outcome in outcomes.items()] if outcomes else whole_run(key)
    store.record_check_run(key, str(stage.learner_file), file_hash(stage.learner_file) if current_file else "old",
                           results, complete=complete)


# -- lesson text ---------------------------------------------------------------------------
def test_the_lesson_is_the_module_docstring_read_without_importing():
    text = lesson.lesson_text(STAGES_BY_KEY["stage1"])
    assert text.source == "reference" and text.path == "lessons/reference/stage1_concepts.py"
    assert text.markdown.startswith("Stage 1 — Concepts")
    assert "``" not in text.markdown, "reStructuredText code marks become Markdown ones"


def test_the_lesson_falls_back_to_the_learner_file_when_the_reference_is_withheld(tmp_path, monkeypatch):
    from lessons.engine.stages import Stage

    learner = tmp_path / "stage9_x.py"
    learner.write_text('"""Stage 9 — a lesson with ``code``."""\nraise SystemExit("never imported")\n')
    stage = Stage("stage9", "9", "stage9_x", "x")
    monkeypatch.setattr(Stage, "learner_file", property(lambda self: learner))
    monkeypatch.setattr(Stage, "reference_file", property(lambda self: tmp_path / "missing.py"))
    text = lesson.lesson_text(stage)
    assert (text.source, text.markdown) == ("learner", "Stage 9 — a lesson with `code`.")


@pytest.mark.parametrize(("source", "expected"), [
    ("Use ``x``.", "Use `x`."),
    ("Like this::\n\n    a = 1\n\nthen more.", "Like this:\n\n```\na = 1\n```\n\nthen more."),
    ("1. a list item::\n\n       x = 1\n\n   still the item.",
     "1. a list item:\n\n   ```\n   x = 1\n   ```\n\n   still the item."),
])
def test_docstring_markdown(source, expected):
    assert lesson.docstring_markdown(source) == expected


def test_stage2s_numbered_list_keeps_its_numbers_after_the_code_block_in_item_3():
    """What the stage 2 page shows, parsed as CommonMark (Streamlit's Markdown): one list, 1 to 5, the block in 3."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(lesson.lesson_text(STAGES_BY_KEY["stage2"]).markdown)
    lists = [token for token in tokens if token.type == "ordered_list_open"]
    assert len(lists) == 1, "a code block that leaves its item starts a second list, numbered 1 again"
    start = tokens.index(lists[0])
    end = next(index for index, token in enumerate(tokens) if token.type == "ordered_list_close")
    items = [index for index in range(start, end) if tokens[index].type == "list_item_open"
             and tokens[index].level == lists[0].level + 1]
    assert len(items) == 5
    fence = next(index for index, token in enumerate(tokens) if token.type == "fence")
    assert items[2] < fence < items[3] and "RECIPE: Pancakes" in tokens[fence].content


# -- check status --------------------------------------------------------------------------
def test_a_teachers_message_is_read_whole_and_a_traceback_is_folded():
    teacher = "format_recipe: the text must end with [END].\n  expected: ...\n  hint: How will it stop?"
    assert lesson.split_message(teacher) == (teacher, "")
    raw = ("def test_x():\n>   assert f() == 2\nE   AssertionError: assert 1 == 2\n\n"
           "checks/stage2/test_x.py:5: AssertionError")
    headline, details = lesson.split_message(raw)
    assert headline == "AssertionError: assert 1 == 2" and details == raw


def test_check_rows_name_each_outcome(store):
    record(store, "stage1", {"test_a": "passed", "test_b": "failed", "test_c": "todo", "test_d": "error"})
    rows = lesson.check_rows(store.latest_check_run("stage1"))
    assert [(row.name, row.status) for row in rows] == [("test_a", "passed"), ("test_b", "failing"),
                                                        ("test_c", "todo"), ("test_d", "error")]
    assert rows[1].headline.startswith("test_b: wrong") and rows[1].icon == "❌"
    assert lesson.check_rows(None) == []


def test_declared_checks_come_from_the_check_files_with_their_docstrings():
    checks = lesson.declared_checks(STAGES_BY_KEY["stage1"])
    names = [name for name, _ in checks]
    assert "test_show_tokens" in names
    tree = ast.parse((STAGES_BY_KEY["stage1"].checks_dir / "test_concepts.py").read_text())
    first = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test"))
    assert checks[0] == (first.name, ast.get_docstring(first).splitlines()[0])


# -- locks -----------------------------------------------------------------------------------
def test_stage_one_is_always_open_and_the_next_opens_when_it_passes(store):
    stage1, stage2 = STAGES_BY_KEY["stage1"], STAGES_BY_KEY["stage2"]
    assert lesson.lock_for(store, stage1, demo=False) is None
    lock = lesson.lock_for(store, stage2, demo=False)
    assert lock.unfinished == stage1 and lock.command == ".venv/bin/python -m pytest checks/stage1"
    assert "Finish stage 1 first" in lock.message and "not been checked" in lock.message

    record(store, "stage1", {"test_a": "passed", "test_b": "failed"})
    lock = lesson.lock_for(store, stage2, demo=False)
    assert lock.failing == ["test_b in words"] and "still failing" in lock.message

    record(store, "stage1", {"test_a": "passed", "test_b": "passed"}, current_file=False)
    assert "changed" in lesson.lock_for(store, stage2, demo=False).message, "passing an older file does not count"

    record(store, "stage1")
    assert lesson.lock_for(store, stage2, demo=False) is None
    assert lesson.lock_for(store, STAGES_BY_KEY["stage7"], demo=True) is None, "demo mode opens everything"


def test_a_lock_names_the_first_stage_not_passed_not_the_one_before(store):
    record(store, "stage1")
    lock = lesson.lock_for(store, STAGES_BY_KEY["stage4a"], demo=False)
    assert lock.unfinished.key == "stage2" and lock.message.startswith("Finish stage 2 first")
    assert lock.command == ".venv/bin/python -m pytest checks/stage2"
    record(store, "stage2")
    assert lesson.lock_for(store, STAGES_BY_KEY["stage4a"], demo=False).unfinished.key == "stage3"


def test_next_step_is_the_first_stage_not_passed(store):
    from lessons.engine.progress import all_progress

    step = lesson.next_step(all_progress(store))
    assert (step.stage.key, step.file, step.command) == ("stage1", "lessons/stage1_concepts.py",
                                                         ".venv/bin/python -m pytest checks/stage1")
    record(store, "stage1")
    assert lesson.next_step(all_progress(store)).stage.key == "stage2"


# -- hints --------------------------------------------------------------------------------------
def test_hints_come_from_the_reference_markers_and_reveals_from_the_store(store):
    stage = STAGES_BY_KEY["stage1"]
    exercises = lesson.hint_exercises(stage)
    keys = [item.key for item in exercises]
    assert len(keys) == len(set(keys)) and "load_model_and_tokenizer#2" in keys  # two blanks in one function
    pick = next(item for item in exercises if item.key == "pick_device#1")
    assert pick.levels() == ["hint", "partial", "solution"]
    assert "torch" in pick.text("hint") and "torch.cuda.is_available()" in pick.text("partial")
    assert pick.text("solution").startswith("if torch.cuda.is_available():"), "the solution is dedented"
    show = next(item for item in exercises if item.key == "show_tokens#1")
    assert show.levels() == ["hint", "solution"], "no PARTIAL lines: no partial reveal"

    assert lesson.revealed_levels(store, stage) == {}
    store.record_reveal("stage1", "pick_device#1", "hint")
    store.record_reveal("stage1", "pick_device#1", "partial")
    assert lesson.revealed_levels(store, stage) == {"pick_device#1": 2}


def test_run_checks_runs_pytest_in_another_process_and_the_store_gets_the_results(tmp_path, monkeypatch):
    from lessons.engine.paths import lab_home

    (tmp_path / "models").symlink_to((lab_home() / "models").resolve(), target_is_directory=True)  # no re-conversion
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.setenv("LAB_LEARNER", "checker")
    result = lesson.run_checks(STAGES_BY_KEY["stage1"], extra_args=["-k", "show_tokens"])
    assert result.command == ".venv/bin/python -m pytest checks/stage1 -k show_tokens"
    assert result.returncode is not None and "stage1" in result.output
    with Store(tmp_path / "lab.sqlite", learner="checker") as store:
        run = store.latest_check_run("stage1")
    assert run is not None and not run["complete"], "a -k run is recorded, but never as complete"


# -- questions -------------------------------------------------------------------------------------
def test_every_stage_has_two_or_three_questions_with_stable_keys():
    assert set(QUESTIONS) == {stage.key for stage in STAGES}
    for key, questions in QUESTIONS.items():
        assert 2 <= len(questions) <= 3, key
        assert len({q.key for q in questions}) == len(questions)
        assert all(q.text.strip().endswith("?") or "?" in q.text for q in questions)


# -- tiers -------------------------------------------------------------------------------------------
def test_criteria_table_covers_every_tier_and_names_real_rules():
    assert {c.tier for c in tiers.CRITERIA} == set(tiers.TIERS)
    assert all(c.rule in tiers.RULES for c in tiers.CRITERIA)
    assert len({c.key for c in tiers.CRITERIA}) == len(tiers.CRITERIA)


def test_nothing_is_met_in_an_empty_store(store):
    judgements = tiers.evaluate(tiers.Evidence.from_store(store))
    assert not any(j.met for j in judgements)
    assert tiers.tier_reached(judgements) is None


def finished_run(store: Store, **config) -> str:
    run_id = store.start_run("train", {"epochs": 1, "rank": 8, "n_recipes": 500, "source": "wikibooks", **config})
    store.update_run(run_id, status="finished")
    return run_id


def test_tiers_are_judged_from_the_learners_own_evidence(store):
    for key in tiers.CORE_STAGES:
        record(store, key)
    store.save_generation("stage1", "before", "base", "RECIPE: x", "y")
    finished_run(store, reference=True)  # a demo run: never counts
    judgements = {j.criterion.key: j for j in tiers.evaluate(tiers.Evidence.from_store(store))}
    assert judgements["core-checks"].met and judgements["before-picture"].met
    assert not judgements["one-run"].met, "a run with the reference solutions is not the learner's evidence"

    finished_run(store)
    evidence = tiers.Evidence.from_store(store)
    assert tiers.tier_reached(tiers.evaluate(evidence)) == "complete"

    finished_run(store, epochs=3)
    finished_run(store, rank=16, n_recipes=1000)
    store.save_evaluation("stage5", "perplexity_before", 17.5)
    store.save_evaluation("stage5", "perplexity_after", 12.5)
    record(store, "stage6")
    for key in tiers.CORE_STAGES:
        for question in QUESTIONS[key]:
            store.save_answer(key, question.key, "Because the loss …")
    judgements = {j.criterion.key: j for j in tiers.evaluate(tiers.Evidence.from_store(store))}
    assert judgements["vary-epochs"].met and judgements["vary-epochs"].evidence == "epochs: 1, 3"
    assert judgements["vary-rank"].met and judgements["vary-data"].met
    assert tiers.tier_reached(list(judgements.values())) == "excellent"
    assert not judgements["own-data-run"].met

    finished_run(store, source="data/own_dataset/kitchen_safety.csv")
    record(store, "stage7")
    for key in ("stage6", "stage7"):
        for question in QUESTIONS[key]:
            store.save_answer(key, question.key, "…")
    assert tiers.tier_reached(tiers.evaluate(tiers.Evidence.from_store(store))) == "exceptional"


def test_a_blank_answer_does_not_count(store):
    for question in QUESTIONS["stage1"]:
        store.save_answer("stage1", question.key, "   ")
    met, detail = tiers.rule_answers(tiers.Evidence.from_store(store), stages=["stage1"])
    assert not met and detail == f"0 of {len(QUESTIONS['stage1'])} answered"


# -- friendly errors ----------------------------------------------------------------------------------
def test_an_unfinished_todo_says_which_file_and_line():
    error = NotImplementedYet("lessons/stage2_data.py", 88, "format_recipe")
    problem = friendly_error(error, doing="formatting")
    assert problem.headline == "While formatting: not implemented yet — open lessons/stage2_data.py:88 (format_recipe)"
    assert problem.location == "lessons/stage2_data.py:88"


def test_an_exception_in_lesson_code_points_at_the_learners_line(tmp_path):
    from lessons.engine.modules import load_stage_module

    module = load_stage_module("stage1", reference=True)
    try:
        module.show_tokens(None, "text")
    except Exception as error:  # noqa: BLE001
        problem = friendly_error(error)
    assert problem.headline.startswith("your code raised TypeError")
    assert problem.location.startswith("lessons/reference/stage1_concepts.py:")
    assert "Traceback" in problem.details


# -- rows and charts ------------------------------------------------------------------------------------
def test_token_chart_shows_every_token_in_order_with_its_id():
    tokens = [{"token": "ĠPanc", "id": 45981, "text": " Panc"}, {"token": "akes", "id": 1174, "text": "akes"}]
    spec = token_chart(tokens).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [(v["text"], v["id"]) for v in values] == [("·Panc", 45981), ("akes", 1174)]
    assert "45981" in token_chips_html(tokens) and visible("a\nb") == "a↵b"
    half = [{"token": "Â", "id": 141, "text": "\ufffd"}]  # token 141 is byte C2 alone: half of a character
    assert next(iter(token_chart(half).to_dict()["datasets"].values()))[0]["text"] == "⟨C2⟩"
    assert "⟨C2⟩" in token_chips_html(half)


def test_loss_chart_calls_eval_validation():
    spec = loss_chart([{"step": 1, "split": "train", "loss": 3.0}, {"step": 1, "split": "eval", "loss": 3.2},
                       {"step": 2, "split": "train", "loss": None}]).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [(v["split"], v["loss"]) for v in values] == [("train", 3.0), ("validation", 3.2)]


def test_loss_charts_count_steps_in_whole_numbers():
    rows = [{"step": 1, "split": "train", "loss": 3.0}, {"step": 3, "split": "train", "loss": 2.0}]
    spec = loss_chart(rows).to_dict()
    assert spec["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}
    rows = [{"run": "a", "split": "train", "step": 1, "loss": 3.0}]
    assert runs_loss_chart(rows).to_dict()["encoding"]["x"]["axis"] == {"format": "d", "tickMinStep": 1}


@pytest.mark.parametrize(("largest", "ticks"), [(0.47, [0, 0.1, 0.2, 0.3, 0.4, 0.5]), (3, [0, 1, 2, 3]),
                                                (116, [0, 25, 50, 75, 100, 125]), (3011, [0, 1000, 2000, 3000, 4000])])
def test_bar_charts_end_on_a_tick_above_the_tallest_bar(largest, ticks):
    assert nice_ticks(largest) == ticks
    rows = [{"setting": "T=0 p=1", "repetition": largest / 2}, {"setting": "T=1.5 p=1", "repetition": largest}]
    value = bar_chart(rows, x="setting", y="repetition").to_dict()["encoding"]["y"]
    assert value["scale"]["domain"] == [0, ticks[-1]] and value["axis"]["values"] == ticks


def test_the_next_token_chart_shows_eight_tokens_readably_with_its_whole_legend():
    from dashboard.logic.stage_data import distribution_rows

    rows = [{"id": 100 + i, "text": f" w{i}", "before": 0.05, "after": 0.04, "kept": True} for i in range(12)]
    rows[1] = {"id": 141, "text": "\ufffd", "token": "Â", "before": 0.1, "after": 0.1, "kept": True}  # byte C2 alone
    spec = next_token_chart(distribution_rows(rows), title="fine-tuned").to_dict()
    values = next(iter(spec["datasets"].values()))
    tokens = list(dict.fromkeys(value["token"] for value in values))
    assert tokens == ["·w0 (100)", "⟨C2⟩ (141)", *[f"·w{i} ({100 + i})" for i in range(2, 8)]]
    assert spec["height"] <= 450
    legend = spec["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0 and legend["orient"] == "top", "the legend's labels whole, not cut"


@pytest.mark.parametrize(("text", "token", "shown"), [
    ("\ufffd", "Â", "⟨C2⟩"), (" Panc", "ĠPanc", "·Panc"), ("ĠPanc", "", "·Panc"), ("½", "Â½", "½"),
    ("a\n", "aĊ", "a↵"), ("\ufffd", "", "⟨?⟩")])
def test_readable_token(text, token, shown):
    assert readable_token(text, token) == shown


def test_captions_name_models_and_settings_in_words():
    from lessons.engine.paths import PROJECT_ROOT

    assert stage_data.model_label(str(PROJECT_ROOT / ".lab" / "models" / "SmolLM2")) == ".lab/models/SmolLM2"
    assert stage_data.model_label("/srv/cache/models/SmolLM2") == "SmolLM2" and stage_data.model_label("gpt2") == "gpt2"
    words = stage_data.settings_text({"temperature": 0.8, "top_p": 0.9, "seed": 0})
    assert words == "temperature 0.8 · top-p 0.9 · seed 0"


@pytest.mark.parametrize(("seconds", "text"), [(None, "–"), (5.4, "5 s"), (245, "4 min 05 s"), (7300, "2 h 01 min")])
def test_format_eta(seconds, text):
    assert stage_data.format_eta(seconds) == text


def test_rows_for_the_stage_results():
    report = {"markup": {"HTML entities": 55}, "removed": {"at least 3 ingredients": 116}, "kept": 3011,
              "fields": {"title": {"types": {"str": 3}, "missing": 0, "empty": 1,
                                   "length_after_cleaning": {"median": 21}}}}
    assert stage_data.mess_rows(report) == [{"kind of mess": "HTML entities", "recipes": 55}]
    assert stage_data.removal_rows(report) == [{"rule failed": "at least 3 ingredients", "recipes": 116}], \
        "no 'kept' bar: beside 3,011 the removals would not show"
    assert stage_data.field_rows(report)[0]["types"] == "str × 3"
    assert stage_data.messy_example([{"title": "a"}, {"title": "b &amp; c"}]) == 1
    gradients = {"layers": [{"name": "model.embed_tokens", "grad_norm": 1.5},
                            {"name": "model.layers.0", "grad_norm": 0.5}]}
    assert [r["layer"] for r in stage_data.gradient_rows(gradients)] == ["embed_tokens", "layers.0"]
    assert stage_data.lora_share(460_800, 134_975_808) == "0.34 % (460,800 of 134,975,808)"
    json.dumps(stage_data.run_rows([{"id": "r", "status": "finished", "config": {"rank": 8}, "summary": {}}]))


# -- logic moved out of the pages (dashboard.logic.modes, runs, bench, stage_data) ---------------------------
def test_the_pages_logic_imports_without_streamlit():
    """The modules the pages draw from load in a process that never imports Streamlit (a fresh one: this one may)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from dashboard.logic import bench, modes, runs, stage_data\n"
            "assert 'streamlit' not in sys.modules, 'a logic module imported streamlit'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("argv", "env", "expected"), [
    ([], {}, False), (["app.py", "--demo"], {}, True), ([], {"LAB_DEMO": "1"}, True), ([], {"LAB_DEMO": "Yes"}, True),
    ([], {"LAB_DEMO": "0"}, False), ([], {"LAB_DEMO": ""}, False)])
def test_demo_mode_is_asked_for_on_the_command_line_or_in_the_environment(argv, env, expected):
    from dashboard.logic.modes import demo_requested

    assert demo_requested(argv, env) is expected


@pytest.mark.parametrize(("value", "expected"), [(None, False), ("", False), ("1", True), ("true", True),
                                                 ("0", False), ("no", False)])
def test_demo_mode_in_the_address(value, expected):
    from dashboard.logic.modes import demo_in_address

    assert demo_in_address(value) is expected


def test_demo_mode_runs_the_reference_and_the_learner_their_own_file():
    from dashboard.logic.modes import lesson_file

    assert lesson_file("stage3", reference=True) == STAGES_BY_KEY["stage3"].reference_file
    assert lesson_file("stage3", reference=False) == STAGES_BY_KEY["stage3"].learner_file


def run_with_adapter(store: Store, folder, *, config: dict | None = None, adapter: bool = True) -> str:
    """A finished training run whose summary names ``folder`` as its adapter (written when ``adapter``)."""
    run_id = store.start_run("train", config or {})
    if adapter:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "adapter_config.json").write_text("{}")
    store.update_run(run_id, status="finished", summary={"adapter_dir": str(folder)})
    return run_id


def test_a_run_is_a_choice_only_when_it_finished_and_saved_an_adapter(store, tmp_path):
    from dashboard.logic.runs import adapter_dir, finetuned_choices

    first = run_with_adapter(store, tmp_path / "first")
    run_with_adapter(store, tmp_path / "no-adapter", adapter=False)  # finished, but nothing saved
    running = store.start_run("train", {})
    (tmp_path / "running").mkdir()
    (tmp_path / "running" / "adapter_config.json").write_text("{}")
    store.update_run(running, summary={"adapter_dir": str(tmp_path / "running")})  # saved, still running
    last = run_with_adapter(store, tmp_path / "last")
    assert finetuned_choices(store) == [first, last], "oldest first, the unfinished and adapter-less left out"
    assert adapter_dir(store.run(first)) == tmp_path / "first"


def test_an_adapter_is_found_in_the_runs_own_folder_when_the_summary_names_none(store):
    from dashboard.logic.runs import adapter_dir
    from lessons.engine import jobs

    run_id = store.start_run("train", {}, status="finished")
    assert adapter_dir(store.run(run_id)) is None
    folder = jobs.run_dir(run_id) / "adapter"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    assert adapter_dir(store.run(run_id)) == folder


def test_a_model_spec_names_the_runs_adapter_and_base_model(store, tmp_path):
    from dashboard.logic.runs import model_spec
    from lessons.engine.errors import LabError

    assert model_spec(None, store) is None, "None: the base model"
    run_id = run_with_adapter(store, tmp_path / "adapter", config={"model": "gpt2"})
    assert model_spec(run_id, store) == {"run": run_id, "adapter": str(tmp_path / "adapter"), "model": "gpt2"}
    default = run_with_adapter(store, tmp_path / "default", config={"model": ""})
    assert model_spec(default, store)["model"] is None, "the default base model"
    with pytest.raises(LabError, match="no saved adapter"):
        model_spec(run_with_adapter(store, tmp_path / "none", adapter=False), store)
    with pytest.raises(LabError, match="no saved adapter"):
        model_spec("no-such-run", store)


def test_the_one_step_report_says_what_it_did_not_measure():
    assert stage_data.shown(0.012345, ".4f") == "0.0123" and stage_data.shown(None, ".4f") == "not measured"
    assert stage_data.change(2.5, 2.45) == "-0.0500"
    assert stage_data.change(None, 2.45) is None and stage_data.change(2.5, None) is None


def test_every_runs_losses_in_one_chart_named_by_their_settings():
    runs = [{"id": "20260101-abc123", "config": {"rank": 8, "epochs": 1, "n_recipes": 400}},
            {"id": "20260102-def456", "config": {}}]
    metrics = {"20260101-abc123": [{"step": 1, "loss": 2.0, "split": "train"},
                                   {"step": 1, "loss": 2.2, "split": "eval"},
                                   {"step": 2, "loss": None, "split": "train"}]}
    assert stage_data.history_loss_rows(runs, metrics) == [
        {"run": "abc123 r=8 ep=1 n=400", "step": 1, "loss": 2.0, "split": "train"},
        {"run": "abc123 r=8 ep=1 n=400", "step": 1, "loss": 2.2, "split": "validation"}]


def test_bench_rows_per_arm_per_epoch_and_the_ladder_in_order():
    from dashboard.logic.bench import bench_charts, bench_rows

    result = {"settings": {"epochs": 2, "max_new_tokens": 6},
              "arms": {"baseline": {"padding_share": 0.25, "tokens_per_s": 100.0, "step_seconds": 40.0,
                                    "stop_rate": 0.0},
                       "lab": {"padding_share": 0.02, "tokens_per_s": 300.0, "step_seconds": 10.0, "stop_rate": 1.0}},
              "ladder": [{"rung": "padded to 256", "tokens_per_s": 100.0}, {"rung": "+ bf16", "tokens_per_s": 180.0}]}
    rows = bench_rows(result)
    assert [(arm["arm"], arm["epoch_seconds"]) for arm in rows["arms"]] == [("original assignment", 20.0),
                                                                           ("LoRA Kitchen", 5.0)]
    assert [rung["rung"] for rung in rows["ladder"]] == ["1. padded to 256", "2. + bf16"] and rows["budget"] == 6
    empty = bench_rows({})
    assert [arm["tokens_per_s"] for arm in empty["arms"]] == [0.0, 0.0] and empty["ladder"] == []
    assert empty["budget"] is None
    charts = bench_charts(result)
    assert len(charts) == 5 and charts[3].to_dict()["title"] == "Generations that stop at [END] within 6 new tokens"


# -- pages only draw ----------------------------------------------------------------------------------------
# A top-level function of a page module that neither uses ``st`` nor calls a function that draws is logic: it
# belongs in dashboard/logic/ (or dashboard/tasks/ when it runs learner code). The few that stay say why.
STAYS_IN_A_PAGE = {
    ("ui.py", "open_store"): "one line: the page's store for this script run, beside open_results_store",
}


def drawing_functions(tree: ast.Module, drawing_imports: set[str]) -> tuple[set[str], set[str]]:
    """(every top-level function, those that draw): a function draws when it (its decorators included) uses
    ``st`` or calls a function that draws, of its own module or imported from ``dashboard.ui``."""
    functions = {node.name: node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names = {name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} for name, node in functions.items()}
    drawing = {name for name, used in names.items() if "st" in used or used & drawing_imports}
    while True:  # a function that calls one that draws draws too
        more = {name for name, used in names.items() if name not in drawing and used & drawing}
        if not more:
            return set(functions), drawing
        drawing |= more


def imported_from_ui(tree: ast.Module) -> set[str]:
    return {alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
            and node.module == "dashboard.ui" for alias in node.names}


def test_a_function_that_uses_no_st_and_calls_nothing_that_draws_is_logic():
    tree = ast.parse("import streamlit as st\n"
                     "from dashboard.ui import friendly, QUICK_LIMIT_S\n"
                     "def title(): st.title('x')\n"
                     "def page(): title()\n"
                     "def guarded():\n    with friendly('x'): pass\n"
                     "@st.cache_resource\ndef cached(): return 1\n"
                     "def rows(report): return [{'n': n} for n in report]\n"
                     "def limit(): return QUICK_LIMIT_S\n")
    functions, drawing = drawing_functions(tree, imported_from_ui(tree) & {"friendly"})
    assert functions - drawing == {"rows", "limit"}


def test_pages_only_draw_their_logic_is_importable():
    from lessons.engine.paths import PROJECT_ROOT

    dashboard = PROJECT_ROOT / "dashboard"
    _, ui_drawing = drawing_functions(ast.parse((dashboard / "ui.py").read_text(encoding="utf-8")), set())
    logic, seen = [], set()
    for path in [dashboard / "ui.py", *sorted((dashboard / "results").glob("*.py")),
                 *sorted((dashboard / "views").glob("*.py"))]:
        where = path.relative_to(dashboard).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions, drawing = drawing_functions(tree, imported_from_ui(tree) & ui_drawing)
        for name in sorted(functions - drawing):
            seen.add((where, name))
            if (where, name) not in STAYS_IN_A_PAGE:
                logic.append(f"dashboard/{where}: {name}")
    assert not logic, ("these page functions neither use st nor call one that draws: move them to "
                       "dashboard/logic/ (tested in this file), or add them to STAYS_IN_A_PAGE with the reason:\n  "
                       + "\n  ".join(logic))
    stale = sorted(set(STAYS_IN_A_PAGE) - seen)
    assert not stale, f"STAYS_IN_A_PAGE names functions that moved, went or draw now: {stale}"


def test_stage5s_measures_beyond_perplexity_keep_shares_and_counts_apart():
    from dashboard.logic.stage_data import beyond_perplexity

    split = beyond_perplexity({"base": {"stop rate": 0.0, "memorised titles": 2.0},
                               "finetuned": {"stop rate": 2 / 3, "memorised titles": 0.0}})
    assert split["shares"] == [{"measure": "stop rate", "model": "base", "percent": 0.0},
                               {"measure": "stop rate", "model": "fine-tuned", "percent": 66.7}]
    assert split["counts"] == [{"measure": "memorised titles", "model": "base", "texts": 2},
                               {"measure": "memorised titles", "model": "fine-tuned", "texts": 0}]
    assert not split["all_zero"]
    assert beyond_perplexity({"base": {"stop rate": 0.0}, "finetuned": {"stop rate": 0.0}})["all_zero"]
