"""Stage 5's "Evaluate" as a background job: phases in order, results in the store, cancel, a clear failure.

A *tiny* Llama (2 layers, 64 wide, the real tokenizer; ``lessons/engine/tiny.py``) is
trained for 2 steps on 8 real recipes, then evaluated by the real job process
(``python -m lessons.engine.jobs evaluate ID``) with the reference solutions. Tiny
because what is tested is the job (its phases, the store, cancelling), which works the
same at any size; SmolLM2 takes minutes here, the tiny model seconds.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from lessons.engine import jobs
from lessons.engine.evaluation import EVALUATION_PHASES, start_evaluation
from lessons.engine.modules import load_stage_module
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_llama
from lessons.engine.training import TrainSettings, run_training

TINY_EVALUATION = {"eval_recipes": 2, "side_by_side": {"max_new_tokens": 4, "temperature": 0.7, "top_p": 0.95,
                                                       "seed": 0}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-step training run of a tiny model: (store path, its run row, its adapter folder)."""
    folder = tmp_path_factory.mktemp("evaluation")
    tokenizer = real_tokenizer()
    tiny_llama(tokenizer).save_pretrained(folder / "tiny-model")
    tokenizer.save_pretrained(folder / "tiny-model")
    settings = TrainSettings(model=str(folder / "tiny-model"), n_recipes=8, test_size=0.25, max_length=96, rank=4,
                             alpha=8, batch_size=2, max_steps=2, eval_every=2, seed=0)
    modules = {key: load_stage_module(key, reference=True) for key in ("stage2", "stage3", "stage4a", "stage4b")}
    with Store(folder / "lab.sqlite", learner="tests") as store:
        run_id = store.start_run("train", {**asdict(settings), "reference": True})
        summary = run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=folder / "run")
        store.update_run(run_id, status="finished")
        run = store.run(run_id)
    return folder / "lab.sqlite", run, summary["adapter_dir"]


def wait_for(store: Store, job_id: str, *, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while (status := jobs.job_status(job_id, store=store))["status"] in jobs.ACTIVE:
        assert time.monotonic() < deadline, jobs.log_tail(job_id)
        time.sleep(0.5)
    return status


@pytest.mark.slow
def test_an_evaluation_job_runs_its_phases_in_order_and_keeps_every_measure(trained):
    store_path, run, adapter = trained
    with Store(store_path, learner="tests") as store:
        job_id = start_evaluation(run, adapter, reference=True, store=store, **TINY_EVALUATION)
        assert store.run(job_id)["status"] in jobs.ACTIVE, "it returns at once; the work goes on in its process"
        status = wait_for(store, job_id)
        assert status["status"] == "finished", (status.get("reason"), jobs.log_tail(job_id, 40))
        phases = [m["phase"] for m in store.metrics(job_id) if m["split"] == "phase"]
        assert phases == [*EVALUATION_PHASES, "done"]
        assert status["fraction"] == 1.0
        values = {e["name"]: e for e in store.evaluations("stage5")}
        for name in ("perplexity_before", "perplexity_after"):
            assert values[name]["run_id"] == run["id"] and math.isfinite(values[name]["value"])
            assert values[name]["details"] == {"recipes": 2, "max_length": 96}
        result = store.result("stage5", "evaluation")
        assert result["run"] == run["id"] and result["recipes"] == 2 and len(result["comparisons"]) == 3
        assert set(result["measures"]) == {"base", "finetuned"}
        assert len(store.generations("stage5", "after")) == 3
        for side in ("base", "after"):
            for name in ("bleu", "rouge1", "rouge2", "rouge_l"):
                assert values[f"{name}_{side}"]["run_id"] == run["id"] and values[f"{name}_{side}"]["value"] >= 0
                assert len(values[f"{name}_{side}"]["details"]["pairs"]) == 2, "one per held-out recipe (of 2)"
            assert 0 < values[f"ttft_ms_{side}"]["value"] and 0 < values[f"ms_per_token_{side}"]["value"]
        assert result["overlap"]["recipes"] == 2 and set(result["latency"]) == {"base", "finetuned"}
        assert result["overlap"]["pairs"][0]["prompt"].startswith("RECIPE: ")
        assert [r["kind"] for r in store.runs()].count("evaluate") == 1
        assert [r["id"] for r in store.runs("train")] == [run["id"]], "an evaluation is not a training run"


@pytest.mark.slow
def test_the_evaluation_reads_the_held_out_recipes_the_run_saved(trained, tmp_path):
    """Not a split rebuilt from the run's settings: one saved held-out recipe means one recipe measured."""
    import shutil

    store_path, run, adapter = trained
    copy = tmp_path / "run"
    shutil.copytree(Path(adapter).parent, copy)
    validation = copy / "splits" / "validation.jsonl"
    validation.write_text(validation.read_text().splitlines()[0] + "\n")
    with Store(store_path, learner="saved-split") as store:
        job_id = start_evaluation(run, copy / "adapter", reference=True, store=store, **TINY_EVALUATION)
        status = wait_for(store, job_id)
        assert status["status"] == "finished", (status.get("reason"), jobs.log_tail(job_id, 40))
        assert store.result("stage5", "evaluation")["recipes"] == 1


@pytest.mark.slow
def test_a_cancelled_evaluation_records_nothing_and_says_so(trained):
    store_path, run, adapter = trained
    with Store(store_path, learner="cancel") as store:
        store.start_run("train", run["config"], run_id=f"{run['id']}-copy", status="finished")
        job_id = start_evaluation(run, adapter, reference=True, store=store, **TINY_EVALUATION)
        jobs.cancel_job(job_id, store=store)
        status = wait_for(store, job_id)
        assert status["status"] == "cancelled", (status.get("reason"), jobs.log_tail(job_id, 40))
        assert store.evaluations("stage5") == [] and store.result("stage5", "evaluation") is None


@pytest.mark.slow
def test_an_evaluation_without_an_adapter_fails_with_the_reason(trained, tmp_path):
    store_path, run, _ = trained
    with Store(store_path, learner="missing") as store:
        job_id = start_evaluation(run, tmp_path / "no-adapter", reference=True, store=store, **TINY_EVALUATION)
        status = wait_for(store, job_id)
        assert status["status"] == "failed"
        assert "no-adapter" in status["reason"], status["reason"]
        assert store.evaluations("stage5") == []


@pytest.mark.slow
def test_the_stage5_page_starts_the_evaluation_in_the_background_and_draws_its_results(trained, monkeypatch):
    """Pressing "Evaluate this run" starts a job (the page does not wait for it); once it ends, a page run draws it."""
    import os

    from streamlit.testing.v1 import AppTest

    from dashboard import ui
    from dashboard.results import stage5 as page

    _, run, adapter = trained
    demo = f"evaluate-page-{os.getpid()}"
    monkeypatch.setattr(ui, "DEMO_LEARNER", demo)
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    with Store(learner=demo) as store:
        store.start_run("train", run["config"], run_id=run["id"], status="finished",
                        checkpoint_dir=str(Path(adapter).parent))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["demo"] = True
    at.run()
    at.switch_page("views/stage5.py").run()
    at.number_input(key="stage5_new_tokens").set_value(4)  # a quick look: 4 new tokens, not 320
    at.button(key="stage5_evaluate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with Store(learner=demo) as store:
        job = store.runs("evaluate")[-1]
        assert job["config"]["target_run"] == run["id"] and job["config"]["reference"] is True
        assert job["config"]["eval_recipes"] == page.EVAL_RECIPES
        assert job["config"]["side_by_side"] == {**page.SIDE_BY_SIDE, "max_new_tokens": 4}
        if store.run(job["id"])["status"] in jobs.ACTIVE:  # still running now, so it was while the page ran
            assert at.button(key="stage5_evaluate").disabled, "one evaluation at a time"
        status = wait_for(store, job["id"])
        assert status["status"] == "finished", (status.get("reason"), jobs.log_tail(job["id"], 40))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.button(key="stage5_evaluate").disabled
    headings = [m.value for m in at.markdown]
    assert f"#### Side by side (run `{run['id']}` on 2 held-out recipes)" in headings
    assert "#### Perplexity before and after" in headings
