"""Experiments side by side: the settings diff, the table and charts' rows, the variant with one setting changed
(refused in words, and queued through the real job machinery with the fake trainer), the excellent tier's rules,
and the lab report's section. Store rows are made here; no model is trained.
"""
from __future__ import annotations

import time

import pytest

from dashboard.logic import experiments as ex
from dashboard.logic import tiers
from dashboard.logic.report import SECTIONS, build_report_html
from lessons.engine import jobs
from lessons.engine.store import Store
from tests.dashboard_fake_training import TrainSettings as FakeSettings
from tests.test_dashboard_jobs import fake_trainer  # noqa: F401 - a fixture
from tests.test_dashboard_pages import learner  # noqa: F401 - a fixture


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lab.sqlite", learner="ada") as opened:
        yield opened


@pytest.fixture(scope="module")
def real_settings():
    # The engine's own TrainSettings: its help texts are what the page shows.
    from lessons.engine.training import TrainSettings

    return TrainSettings


def train_run(store: Store, name: str = "", status: str = "finished", losses=(3.0, 2.0, 1.5), **config) -> dict:
    from dataclasses import asdict

    from lessons.engine.training import TrainSettings

    run_id = store.start_run("train", {**asdict(TrainSettings()), "reference": False, **config}, name=name,
                             status=status)
    for step, loss in enumerate(losses, start=1):
        store.log_metric(run_id, step, "train", loss=loss, tokens_per_s=900.0 + step)
    store.log_metric(run_id, len(losses), "validation", loss=losses[-1] + 0.2)
    return store.run(run_id)


# -- the diff -----------------------------------------------------------------------------------------
def test_the_diff_shows_only_what_differs_with_its_help_and_names_the_rest_once(store, real_settings):
    first = train_run(store, "base", rank=8, epochs=1.0)
    second = train_run(store, "bigger", rank=16, epochs=2.0)
    third = train_run(store, "bigger", rank=16, epochs=1.0, reference=True)
    diff = ex.settings_diff([first, second, third], real_settings)
    rows = {row["setting"]: row for row in diff["differ"]}
    assert set(rows) == {"rank", "epochs", "reference"}
    assert rows["rank"][ex.run_label(first)] == "8" and rows["rank"][ex.run_label(second)] == "16"
    assert rows["epochs"][ex.run_label(third)] == "1"
    assert rows["rank"]["what it is"].startswith("LoRA rank r"), "each setting says what it is"
    assert rows["reference"][ex.run_label(third)] == "True"
    assert "alpha" in diff["same"] and "rank" not in diff["same"] and "learning_rate" in diff["same"]
    assert len({ex.run_label(run) for run in (first, second, third)}) == 3, "two runs of one name stay apart"


def test_a_setting_added_since_an_old_run_counts_as_its_default(store, real_settings):
    old = train_run(store, "old")
    config = dict(old["config"])
    config.pop("packing")  # an old run's config, from before the field existed
    store.update_run(old["id"], config=config)
    new = train_run(store, "new", packing=True)
    diff = ex.settings_diff([store.run(old["id"]), new], real_settings)
    (row,) = diff["differ"]
    assert row["setting"] == "packing" and row[ex.run_label(old)] == "False" and row[ex.run_label(new)] == "True"


def test_without_the_engine_the_diff_reads_the_configs(store):
    first, second = train_run(store, rank=4), train_run(store, rank=32)
    diff = ex.settings_diff([first, second], None)
    assert [row["setting"] for row in diff["differ"]] == ["rank"] and diff["differ"][0]["what it is"] == ""


# -- the table and the charts' rows ------------------------------------------------------------------
def test_the_table_has_each_runs_losses_and_what_stage5_measured(store):
    evaluated = train_run(store, "evaluated", losses=(3.0, 2.0))
    plain = train_run(store, "plain", status="failed", losses=(4.0,))
    store.save_evaluation("stage5", "perplexity_after", 30.0, run_id=evaluated["id"])
    store.save_evaluation("stage5", "perplexity_after", 12.5, run_id=evaluated["id"])  # evaluated again: newest wins
    store.save_evaluation("stage5", "finetuned: stop rate", 2 / 3, run_id=evaluated["id"])
    store.save_evaluation("stage5", "base: stop rate", 0.0, run_id=evaluated["id"])
    store.update_run(evaluated["id"], summary={"n_train": 2816, "n_validation": 313})  # 5,000 asked of 3,129
    evaluated = store.run(evaluated["id"])
    runs = [evaluated, plain]
    metrics = {run["id"]: store.metrics(run["id"]) for run in runs}
    rows = ex.comparison_rows(runs, metrics, store.evaluations("stage5"))
    first, second = rows
    assert (first["status"], first["steps"], first["final train loss"]) == ("finished", 2, 2.0)
    assert first["final validation loss"] == pytest.approx(2.2)
    assert first["perplexity after"] == 12.5 and first["stop rate"] == pytest.approx(2 / 3)
    assert first["tokens per second"] == 902.0 and first["training time (s)"] is not None
    assert (second["status"], second["perplexity after"], second["measured by"]) == ("failed", None, ex.NOT_EVALUATED)
    assert first["measured by"] == ex.BY_STAGE5
    assert (first["recipes used"], second["recipes used"]) == (3129, None), "what the run counted, not asked for"

    bars = ex.quality_rows(rows)
    assert bars == [{"run": first["run"], "measure": "perplexity after (lower is better)", "value": 12.5},
                    {"run": first["run"], "measure": "stop rate, % (higher is better)", "value": 66.7}]

    overlay = ex.loss_overlay_rows(runs, metrics)
    assert {(row["run"], row["split"]) for row in overlay} == {
        (first["run"], "train"), (first["run"], "validation"), (second["run"], "train"),
        (second["run"], "validation")}
    assert [row["loss"] for row in overlay if row["run"] == first["run"] and row["split"] == "train"] == [3.0, 2.0]


def test_a_run_that_measured_itself_shows_its_own_numbers_until_stage5_evaluates_it(store):
    run = train_run(store, "self-measured")
    store.update_run(run["id"], summary={"heldout_perplexity": 8.25, "stop_rate": 0.75, "seconds": 61.04})
    run = store.run(run["id"])
    (row,) = ex.comparison_rows([run], {run["id"]: store.metrics(run["id"])}, [])
    assert (row["perplexity after"], row["stop rate"], row["measured by"]) == (8.25, 0.75, ex.BY_THE_RUN)
    assert row["training time (s)"] == 61.0, "the run's own count of its training time"
    store.save_evaluation("stage5", "perplexity_after", 9.0, run_id=run["id"])
    (row,) = ex.comparison_rows([run], {}, store.evaluations("stage5"))
    assert (row["perplexity after"], row["stop rate"], row["measured by"]) == (9.0, None, ex.BY_STAGE5), \
        "one row never mixes stage 5's perplexity with the run's own stop rate"


# -- one setting changed -----------------------------------------------------------------------------
@pytest.mark.parametrize("setting, value, words", [
    ("rank", "2.5", "rank is a whole number"),
    ("rank", "sixteen", "rank is a whole number"),
    ("rank", 0, "rank must be a rank of at least 1"),
    ("learning_rate", "fast", "learning_rate is a number"),
    ("test_size", "1.5", "between 0 and 1"),
    ("packing", "maybe", "yes or no"),
    ("rank", "8", "already has rank = 8"),
    ("learning_rate", "5e-3", "already has learning_rate = 0.005"),
    ("n_recipes", "", "n_recipes needs a value"),
    ("target_modules", " , ", "at least one name"),
    ("colour", "red", "'colour' is not a training setting"),
    ("method", "prefix", "Unknown fine-tuning method 'prefix'"),
])
def test_a_variant_that_cannot_be_is_refused_in_words(store, real_settings, setting, value, words):
    run = train_run(store, rank=8, learning_rate=5e-3)
    with pytest.raises(ex.VariantRefused, match=words):
        ex.variant_settings(run, setting, value, real_settings)


def test_epochs_under_a_step_limit_and_data_size_of_own_data_are_refused(store, real_settings):
    limited = train_run(store, max_steps=50)
    with pytest.raises(ex.VariantRefused, match="max_steps = 50"):
        ex.variant_settings(limited, "epochs", "3", real_settings)
    own = train_run(store, own_dataset={"path": "mine.csv"})
    with pytest.raises(ex.VariantRefused, match="your own file"):
        ex.variant_settings(own, "n_recipes", "1000", real_settings)


def test_a_variant_copies_every_setting_but_the_one_changed(store, real_settings):
    from dataclasses import asdict

    run = train_run(store, "mine", rank=8, target_modules=["q_proj", "v_proj"], learning_rate=2e-4)
    for setting, text, expected in (("rank", "16", 16), ("learning_rate", "1e-3", 1e-3), ("packing", "yes", True),
                                    ("target_modules", "q_proj, k_proj, v_proj", ["q_proj", "k_proj", "v_proj"]),
                                    ("model", "none", None)):
        if setting == "model":
            run = train_run(store, "named", model="gpt2")
        variant = asdict(ex.variant_settings(run, setting, text, real_settings))
        original = {key: value for key, value in run["config"].items() if key != "reference"}
        assert variant[setting] == expected
        assert {k: v for k, v in variant.items() if k != setting} == \
               {k: v for k, v in original.items() if k != setting}
    assert ex.variant_name(run, "rank", 16) == "named · rank 16"
    assert ex.variant_name({"id": "20260101-abcdef", "name": ""}, "learning_rate", 1e-3) == \
        "run abcdef · learning rate 0.001"


def test_the_variant_is_queued_with_the_one_setting_changed_and_trains(fake_trainer):
    from dataclasses import asdict

    store = fake_trainer
    original = store.start_run("train", {**asdict(FakeSettings(max_steps=4, rank=8)), "reference": False},
                               name="first try", status="finished")
    variant_id = ex.queue_variant(store.run(original), "rank", "16", store=store, reference=False)
    variant = store.run(variant_id)
    assert variant["name"] == "first try · rank 16"
    assert variant["config"]["rank"] == 16 and variant["config"]["reference"] is False
    assert {k: v for k, v in variant["config"].items() if k != "rank"} == \
           {k: v for k, v in store.run(original)["config"].items() if k != "rank"}
    deadline = time.monotonic() + 60
    while (status := jobs.job_status(variant_id, store=store))["status"] in jobs.ACTIVE:
        assert time.monotonic() < deadline, jobs.log_tail(variant_id)
        time.sleep(0.1)
    assert status["status"] == "finished" and status["step"] == 4, jobs.log_tail(variant_id)


# -- the excellent tier -------------------------------------------------------------------------------
def finished(store: Store, summary: dict | None = None, **config) -> None:
    run_id = store.start_run("train", {"epochs": 1, "rank": 8, "alpha": 16, "n_recipes": 400, "max_steps": -1,
                                       "source": "wikibooks", **config})
    store.update_run(run_id, status="finished", **({"summary": summary} if summary else {}))


def judged(store: Store) -> dict:
    return {j.criterion.key: j for j in tiers.evaluate(tiers.Evidence.from_store(store))}


def test_epochs_count_only_for_runs_that_trained_their_epochs(store):
    finished(store, epochs=1, max_steps=30)
    finished(store, epochs=3, max_steps=30)  # both stopped at step 30: the epochs made no difference
    assert not judged(store)["vary-epochs"].met
    finished(store, epochs=2)
    finished(store, epochs=1)
    assert judged(store)["vary-epochs"].met and judged(store)["vary-epochs"].evidence == "epochs: 1, 2"


def test_alpha_counts_with_rank_and_own_data_runs_do_not_vary_the_recipe_count(store):
    finished(store, alpha=16)
    finished(store, alpha=32)
    rank = judged(store)["vary-rank"]
    assert rank.met and rank.evidence == "LoRA rank: 8 · LoRA alpha: 16, 32"
    finished(store, n_recipes=3000, own_dataset={"path": "mine.csv"})
    assert not judged(store)["vary-data"].met, "a run on your own file did not use 3000 recipes"
    finished(store, n_recipes=1000)
    assert judged(store)["vary-data"].met and judged(store)["vary-data"].evidence == "data size: 400, 1000"


def test_data_sizes_count_as_the_recipes_a_run_used_not_the_number_asked_for(store):
    finished(store, n_recipes=5000, summary={"n_train": 2816, "n_validation": 313})  # 3,129 there: both used all
    finished(store, n_recipes=10000, summary={"n_train": 2816, "n_validation": 313})
    assert not judged(store)["vary-data"].met, "5,000 and 10,000 asked of 3,129 recipes trained on the same data"
    finished(store, n_recipes=1000, summary={"n_train": 900, "n_validation": 100})
    assert judged(store)["vary-data"].met and judged(store)["vary-data"].evidence == "data size: 1000, 3129"


def test_demo_runs_never_count_as_experiments(store):
    finished(store, rank=8, reference=True)
    finished(store, rank=16, reference=True)
    assert not judged(store)["vary-rank"].met


# -- the lab report --------------------------------------------------------------------------------
def test_the_report_shows_the_diff_and_the_table_of_the_learners_runs(store):
    first = train_run(store, "base", rank=8)
    train_run(store, "wider", rank=32)
    store.save_evaluation("stage5", "perplexity_after", 11.25, run_id=first["id"])
    html = build_report_html(store)
    assert "Experiments side by side" in SECTIONS
    section = html.split('id="experiments-side-by-side"')[1].split("</section>")[0]
    assert "rank" in section and "LoRA rank r" in section and ">32<" in section
    assert "11.25" in section and ex.NOT_EVALUATED in section
    assert "same in all" in section
    assert section.count("<svg") == 1 and f"{first['id'][-6:]} train" in section, "the loss curves, one per run"


def test_the_report_says_when_there_is_nothing_to_compare(store):
    train_run(store, "alone")
    section = build_report_html(store).split('id="experiments-side-by-side"')[1].split("</section>")[0]
    assert "not done yet" in section


# -- the page, on the real engine's settings (AppTest: no browser, no training) ------------------------------
def test_the_page_says_where_to_train_first_then_shows_each_differing_setting_with_its_help(learner):
    from tests.test_dashboard_pages import open_page, texts

    at = open_page("experiments")
    assert "No training run yet: train one on the stage 4B page" in texts(at.info)
    with Store() as own:  # the learner's own store, as the page opens it
        train_run(own, "small", rank=4)
        train_run(own, "large", rank=64)
    at = open_page("experiments")
    (table,) = at.table
    frame = table.value
    assert list(frame.index) == ["rank"] and frame.loc["rank", "what it is"].startswith("LoRA rank r")
    assert sorted(frame.loc["rank"].drop("what it is")) == ["4", "64"]
    assert len(at.get("vega_lite_chart")) == 1, "the loss overlay; no bars before stage 5 evaluated a run"
    assert "evaluate it on stage 5" in texts(at.caption)
    assert "✅ LoRA rank or alpha" in texts(at.caption) and "⬜ the number of epochs" in texts(at.caption), \
        "the excellent tier's experiments, counted from these two runs"
