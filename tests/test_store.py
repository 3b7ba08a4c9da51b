"""The lab's store: nothing a learner did is lost, even when a process is killed mid-write."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from lessons.engine.progress import CHANGED, FAILING, NOT_STARTED, PASSED, stage_progress
from lessons.engine.registry import stage_checks
from lessons.engine.stages import STAGES_BY_KEY, file_hash
from lessons.engine.store import Store
from tests.records import whole_run

WRITER = textwrap.dedent("""
    import sys
    from lessons.engine.store import Store
    store = Store(sys.argv[1], learner="ada")
    run = store.start_run("train", {"rank": 8})
    print(run, flush=True)
    step = 0
    while True:  # write until killed
        step += 1
        store.log_metric(run, step, loss=1.0 / step, tokens_per_s=100.0)
        store.record_check_run("stage2", "lessons/stage2_data.py", "abc",
                               [{"name": f"test_{i}", "outcome": "passed"} for i in range(5)], complete=True)
""")


def test_a_process_killed_mid_write_leaves_a_whole_store(tmp_path):
    path = tmp_path / "lab.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    run_id = writer.stdout.readline().strip()
    time.sleep(1.5)  # let it write a few hundred transactions
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    with Store(path, learner="ada") as store:
        assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        metrics = store.metrics(run_id)
        assert len(metrics) > 10, "the metrics written before the kill are kept"
        assert [m["step"] for m in metrics] == list(range(1, len(metrics) + 1)), "no gaps, no half rows"
        runs = store._conn.execute("SELECT id, total FROM check_runs").fetchall()
        for run in runs:  # every check run has all its results, or does not exist
            count = store._conn.execute("SELECT COUNT(*) FROM check_results WHERE run_id=?", (run[0],)).fetchone()[0]
            assert count == run[1] == 5


def test_wal_mode_lets_a_reader_see_a_writer(tmp_path):
    path = tmp_path / "lab.sqlite"
    writer = Store(path, learner="ada")
    run = writer.start_run("train", {})
    writer.log_metric(run, 1, loss=2.5)
    assert writer._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader = Store(path, learner="ada", read_only=True)
    assert reader.metrics(run)[0]["loss"] == 2.5
    try:
        reader.save_answer("stage1", "q", "a")
        raise AssertionError("a read-only store must refuse writes")
    except sqlite3.OperationalError:
        pass


def test_round_trips(tmp_path):
    store = Store(tmp_path / "s.sqlite", learner="ada")
    store.save_answer("stage1", "q1", "first")
    store.save_answer("stage1", "q1", "second")
    assert store.answers("stage1") == {("stage1", "q1"): "second"}
    store.save_generation("stage1", "before", "smollm2", "RECIPE: Soup", " text", {"temperature": 0.8})
    assert store.generations("stage1", "before")[0]["settings"] == {"temperature": 0.8}
    store.save_evaluation("stage5", "perplexity", 12.5, details={"n": 100})
    assert store.evaluations(name="perplexity")[0]["details"] == {"n": 100}
    store.put_result("stage2", "report", {"kept": 3})
    store.put_result("stage2", "report", {"kept": 4})
    assert store.result("stage2", "report") == {"kept": 4}
    other = Store(tmp_path / "s.sqlite", learner="bob")
    assert other.answers() == {}, "learners never see each other's rows"


def test_class_mode_gives_each_learner_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CLASS_DIR", str(tmp_path / "class"))
    assert Store(learner="ada").path == tmp_path / "class" / "ada" / "lab.sqlite"


def test_progress_follows_the_file_hash(tmp_path):
    stage = STAGES_BY_KEY["stage1"]
    store = Store(tmp_path / "p.sqlite", learner="ada")
    assert stage_progress(store, stage).status == NOT_STARTED
    passing = whole_run("stage1")
    store.record_check_run("stage1", "lessons/stage1_concepts.py", file_hash(stage.learner_file), passing, complete=True)
    assert stage_progress(store, stage).status == PASSED
    assert stage_progress(store, stage).unlocked_next
    store.record_check_run("stage1", "lessons/stage1_concepts.py", "an-older-file", passing, complete=True)
    assert stage_progress(store, stage).status == CHANGED
    store.record_check_run("stage1", "lessons/stage1_concepts.py", file_hash(stage.learner_file),
                           whole_run("stage1", {stage_checks("stage1")[-1]: "failed"}), complete=True)
    assert stage_progress(store, stage).status == FAILING


def test_a_run_that_says_complete_but_lacks_a_registered_check_does_not_pass(tmp_path):
    stage = STAGES_BY_KEY["stage1"]
    store = Store(tmp_path / "p.sqlite", learner="ada")
    all_but_one = whole_run("stage1")[:-1]
    store.record_check_run("stage1", "lessons/stage1_concepts.py", file_hash(stage.learner_file), all_but_one,
                           complete=True)
    assert stage_progress(store, stage).status == FAILING


def test_a_partial_run_never_passes_a_stage(tmp_path):
    stage = STAGES_BY_KEY["stage1"]
    store = Store(tmp_path / "p.sqlite", learner="ada")
    store.record_check_run("stage1", "lessons/stage1_concepts.py", file_hash(stage.learner_file),
                           [{"name": "test_a", "outcome": "passed"}], complete=False)
    assert stage_progress(store, stage).status == FAILING
