"""Background training jobs: started, watched, killed, cancelled and resumed, with a fake trainer.

The trainer is ``tests/dashboard_fake_training.py`` (chosen through
``LAB_JOBS_TRAINER``), so these tests exercise the job machinery itself — real
processes, the real store, ``kill -9`` — in seconds, without training a model.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from lessons.engine import jobs
from lessons.engine.store import Store
from tests.dashboard_fake_training import TrainSettings


@pytest.fixture
def fake_trainer(monkeypatch, tmp_path):
    monkeypatch.setenv(jobs.TRAINER_ENV, "tests.dashboard_fake_training")
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)  # the learner's own lab, whatever the shell has
    store = Store(tmp_path / "home" / "lab.sqlite", learner="ada")
    yield store
    for run in store.runs("train"):  # never leave a job behind
        if run["status"] in jobs.ACTIVE and jobs.pid_alive(run["pid"]):
            os.kill(run["pid"], signal.SIGKILL)
    store.close()


def wait_for(predicate, timeout: float = 30.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"waited {timeout} s in vain")


def test_a_job_runs_in_its_own_process_and_finishes(fake_trainer):
    store = fake_trainer
    run_id = jobs.start_job(TrainSettings(max_steps=6, eval_every=3), reference=True, store=store)
    run = store.run(run_id)
    assert run["kind"] == "train" and run["config"]["max_steps"] == 6 and run["config"]["reference"] is True
    assert run["pid"] != os.getpid(), "the job must run in a process of its own"
    status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] == "finished" and s)
    assert status["step"] == 6 and status["fraction"] == 1.0 and status["total_steps"] == 6
    assert status["train_loss"] == pytest.approx(0.5) and status["eval_loss"] == pytest.approx(3.2 / 6)
    assert status["summary"]["final_train_loss"] == pytest.approx(0.5)
    assert [m["step"] for m in store.metrics(run_id) if m["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert "step 6" in jobs.log_tail(run_id)
    assert jobs.newest_active_run(store) is None


def test_a_killed_job_is_reported_failed_and_keeps_its_metrics(fake_trainer, monkeypatch):
    store = fake_trainer
    monkeypatch.setenv("FAKE_STEP_S", "0.2")
    run_id = jobs.start_job(TrainSettings(max_steps=200), reference=False, store=store)
    wait_for(lambda: len(store.metrics(run_id)) >= 3)
    running = jobs.job_status(run_id, store=store)
    assert running["status"] == "running" and 0 < running["fraction"] < 1 and running["eta_s"] > 0
    assert jobs.newest_active_run(store)["id"] == run_id, "a reloaded page re-attaches to the running job"

    os.kill(running["pid"], signal.SIGKILL)  # kill -9: no chance to say goodbye
    status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] != "running" and s)
    assert status["status"] == "failed"
    assert status["reason"] == jobs.ENDED_UNEXPECTEDLY
    kept = [m["step"] for m in store.metrics(run_id) if m["split"] == "train"]
    assert len(kept) >= 3 and kept == list(range(1, len(kept) + 1)), "the metrics written before the kill stay"

    # ... and it resumes from its last checkpoint, under the same run id, to the end.
    monkeypatch.setenv("FAKE_STEP_S", "0.01")
    store.update_run(run_id, config={**status["config"], "max_steps": len(kept) + 5})
    jobs.resume_job(run_id, store=store)
    done = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] == "finished" and s)
    assert done["summary"]["resumed_from"] >= len(kept) - 1
    assert done["step"] == len(kept) + 5


def test_cancel_stops_after_the_current_step_and_resume_continues(fake_trainer, monkeypatch):
    store = fake_trainer
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    run_id = jobs.start_job(TrainSettings(max_steps=40), reference=False, store=store)
    wait_for(lambda: len(store.metrics(run_id)) >= 2)
    with pytest.raises(jobs.LabError, match="still running"):
        jobs.resume_job(run_id, store=store)
    jobs.cancel_job(run_id, store=store)
    assert jobs.job_status(run_id, store=store)["cancel_requested"]
    status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] not in jobs.ACTIVE and s)
    assert status["status"] == "cancelled" and "cancelled at step" in status["reason"]
    stopped_at = status["step"]
    assert stopped_at < 40

    monkeypatch.setenv("FAKE_STEP_S", "0.01")
    jobs.resume_job(run_id, store=store)
    assert not jobs.cancel_requested(run_id), "resuming clears the cancel flag"
    done = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] == "finished" and s)
    assert done["summary"]["resumed_from"] == stopped_at
    assert done["step"] == 40
    with pytest.raises(jobs.LabError, match="finished already"):
        jobs.resume_job(run_id, store=store)


def test_a_run_on_the_learners_own_dataset_trains_on_stage7s_splits(fake_trainer):
    store = fake_trainer
    own = {"path": "data/own_dataset/kitchen_safety.csv", "template": "QUESTION: {question}\nANSWER: {answer}\n[END]"}
    run_id = jobs.start_job(TrainSettings(max_steps=2, test_size=0.2), reference=True, store=store, own_dataset=own)
    assert store.run(run_id)["config"]["own_dataset"]["path"] == own["path"]
    status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] not in jobs.ACTIVE and s)
    assert status["status"] == "finished", status["reason"]
    assert status["summary"]["own_rows"] == {"train": 29, "validation": 7}, "36 clean rows of 49, split 80/20"


def test_out_of_memory_says_which_setting_to_lower(fake_trainer):
    store = fake_trainer
    run_id = jobs.start_job(TrainSettings(batch_size=1024, max_length=512), reference=False, store=store)
    status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] not in jobs.ACTIVE and s)
    assert status["status"] == "failed"
    assert "ran out of memory" in status["reason"]
    assert "batch size (now 1024; try 512)" in status["reason"] and "max length (now 512" in status["reason"]


def test_a_bug_in_training_fails_the_run_with_the_error():
    reason = jobs.explain_failure(ValueError("learning rate must be positive"))
    assert reason == "ValueError: learning rate must be positive"
    assert "lower the batch size" in jobs.explain_failure(MemoryError())


def test_a_run_marked_running_with_a_dead_process_becomes_failed(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        run_id = store.start_run("train", {"max_steps": 10}, status="running")
        store.update_run(run_id, pid=2 ** 22 + 12345)  # no such process
        store.log_metric(run_id, 1, loss=2.0)
        status = jobs.job_status(run_id, store=store)
        assert status["status"] == "failed" and status["reason"] == jobs.ENDED_UNEXPECTEDLY
        assert status["train_loss"] == 2.0 and status["total_steps"] == 10


def test_cancelling_a_queued_run_whose_process_never_started(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        run_id = store.start_run("train", {}, status="queued")
        store.update_run(run_id, pid=2 ** 22 + 12345)
        jobs.cancel_job(run_id, store=store)
        assert store.run(run_id)["status"] == "cancelled"


@pytest.mark.parametrize(("config", "summary", "expected"), [
    ({"max_steps": 60}, {}, 60),
    ({"max_steps": 0, "n_recipes": 100, "test_size": 0.1, "batch_size": 4, "epochs": 2}, {}, 46),
    ({"max_steps": -1, "n_recipes": 100}, {"total_steps": 7}, 7),
    ({}, {}, None),
])
def test_expected_total_steps(config, summary, expected):
    assert jobs.expected_total_steps(config, summary) == expected


def test_settings_are_rebuilt_from_a_stored_config_ignoring_unknown_keys():
    settings = jobs.settings_from_config({"rank": 4, "reference": True, "gone": 1}, TrainSettings)
    assert settings.rank == 4 and settings == TrainSettings(rank=4)


@pytest.mark.slow
def test_a_real_job_trains_the_real_model_with_the_reference_code(tmp_path, monkeypatch):
    """The whole chain once, for real: the job process, lessons.engine.training, the stage modules, an adapter."""
    from lessons.engine.paths import lab_home
    from lessons.engine.training import ADAPTER, TrainSettings as RealSettings

    (tmp_path / "models").symlink_to((lab_home() / "models").resolve(), target_is_directory=True)
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv(jobs.TRAINER_ENV, raising=False)
    # Tiny on purpose: 2 steps of 2 recipes × 64 tokens, so the real model trains in seconds on a CPU.
    settings = RealSettings(n_recipes=40, max_length=64, batch_size=2, max_steps=2, eval_every=1)
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        run_id = jobs.start_job(settings, reference=True, store=store)
        status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] not in jobs.ACTIVE and s,
                          timeout=400, every=1)
        assert status["status"] == "finished", f"{status['reason']}\n{jobs.log_tail(run_id, 40)}"
        assert status["step"] == 2 and status["fraction"] == 1.0
        assert status["summary"]["adapter_dir"] == str(jobs.run_dir(run_id) / ADAPTER)
        assert (jobs.run_dir(run_id) / ADAPTER / "adapter_config.json").exists()
        train = [m for m in store.metrics(run_id) if m["split"] == "train"]
        assert train and all(m["loss"] > 0 for m in train) and train[-1]["tokens_per_s"]
        assert "model" not in status["summary"], "the trained model object never goes into the store"


def test_the_4b_pages_job_trains_for_real_streams_metrics_and_cancels_keeping_the_curve(tmp_path, monkeypatch):
    """start_job (what the 4B page calls) with the REAL run_training: live metrics, then a cancel that keeps them.

    The model is tiny on purpose: a 2-layer Llama with the real tokenizer (``lessons.engine.tiny``), saved with
    ``save_pretrained`` and passed as ``TrainSettings.model`` (a folder is a valid model name). It goes through
    the same code as SmolLM2 (the real tokenizer, [END] added by stage 3, LoRA on the same attention layer
    names, the Trainer, checkpoints, the store) at a few steps a second, where the 135M model would need a
    minute to load and seconds per step on this shared 2-core CPU.
    """
    from lessons.engine.paths import lab_home
    from lessons.engine.tiny import real_tokenizer, tiny_llama
    from lessons.engine.training import TrainSettings as RealSettings

    tokenizer = real_tokenizer()
    model_dir = tmp_path / "tiny-llama"
    tiny_llama(tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (tmp_path / "models").symlink_to((lab_home() / "models").resolve(), target_is_directory=True)
    monkeypatch.setenv("LAB_HOME", str(tmp_path))
    monkeypatch.delenv(jobs.TRAINER_ENV, raising=False)  # the real lessons.engine.training, not the fake
    # Far more steps than the test waits for: it must still be running when the cancel comes.
    settings = RealSettings(model=str(model_dir), n_recipes=40, max_length=64, batch_size=2, max_steps=400,
                            eval_every=5)
    with Store(tmp_path / "lab.sqlite", learner="ada") as store:
        run_id = jobs.start_job(settings, reference=True, store=store, name="tiny, cancelled")
        try:
            wait_for(lambda: jobs.job_status(run_id, store=store)["status"] == "running", timeout=60, every=0.2)
            live = wait_for(lambda: [m for m in store.metrics(run_id) if m["split"] == "train"][:3]
                            if len([m for m in store.metrics(run_id) if m["split"] == "train"]) >= 3 else None,
                            timeout=90, every=0.2)
            assert jobs.job_status(run_id, store=store)["status"] == "running", "metrics arrive while it runs"
            assert all(m["loss"] > 0 for m in live) and [m["step"] for m in live] == sorted(m["step"] for m in live)

            jobs.cancel_job(run_id, store=store)
            status = wait_for(lambda: (s := jobs.job_status(run_id, store=store))["status"] not in jobs.ACTIVE and s,
                              timeout=60, every=0.2)
        finally:
            run = store.run(run_id)
            if run["status"] in jobs.ACTIVE and jobs.pid_alive(run["pid"]):
                os.kill(run["pid"], signal.SIGKILL)
        assert status["status"] == "cancelled", f"{status['reason']}\n{jobs.log_tail(run_id, 40)}"
        assert "cancelled at step" in status["reason"]
        curve = [m for m in store.metrics(run_id) if m["split"] == "train"]
        assert len(curve) >= 3 and curve[:3] == live, "the partial curve is kept"
        assert status["step"] < settings.max_steps
