"""The lab's store: nothing a learner did is lost, even when a process is killed mid-write."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from lessons.engine.errors import LabError
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


KILLED_MID_TRANSACTION = textwrap.dedent("""
    import sys, time
    from lessons.engine.store import Store
    store = Store(sys.argv[1], learner="ada")
    run = store.runs("train")[0]["id"]
    conn = store._conn
    conn.execute("PRAGMA cache_size=2")  # the transaction outgrows the cache: its pages reach the file itself
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO metrics (run_id, step, split, t) VALUES (?, ?, 'train', 0)",
                     [(run, step) for step in range(4, 20000)])
    print("mid-write", flush=True)
    time.sleep(120)
""")


def test_a_reader_that_may_not_write_reads_the_last_commit_of_a_store_killed_mid_write(tmp_path):
    """A class store (rollback journal) whose learner was killed mid-transaction: the instructor reads it."""
    from lessons.engine.store import MIGRATIONS
    from lessons.engine.store_file import connect

    path = tmp_path / "lab.sqlite"
    connect(path, read_only=False, migrations=MIGRATIONS, shared=True).close()
    with Store(path, learner="ada") as store:
        run_id = store.start_run("train", {"rank": 8})
        for step in (1, 2, 3):
            store.log_metric(run_id, step, loss=1.0 / step)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_MID_TRANSACTION, str(path)], stdout=subprocess.PIPE,
                              text=True, cwd=os.getcwd())
    assert writer.stdout.readline().strip() == "mid-write"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    journal = path.with_name("lab.sqlite-journal")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as plain:  # what SQLite alone says to such a reader
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):
            plain.execute("SELECT count(*) FROM metrics").fetchone()
    left = (path.read_bytes(), journal.read_bytes())

    with Store(path, learner="ada", read_only=True) as store:
        assert [m["step"] for m in store.metrics(run_id)] == [1, 2, 3], "the last commit, not the half-written one"
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.log_metric(run_id, 4, loss=0.25)
    assert (path.read_bytes(), journal.read_bytes()) == left, "the learner's files are left for the learner"

    with Store(path, learner="ada") as store:  # the learner's next open rolls their own store back
        assert [m["step"] for m in store.metrics(run_id)] == [1, 2, 3]
    assert not journal.exists()


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


def test_a_class_folder_must_be_made_by_class_init(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CLASS_DIR", str(tmp_path / "class"))
    with pytest.raises(LabError, match="(?s)is not a class folder.*class init"):
        Store()


def test_in_a_class_an_instructors_own_store_stays_in_their_lab_home(tmp_path, monkeypatch):
    import grp

    from lessons.engine.classroom import init_class
    from lessons.engine.paths import lab_home

    if os.geteuid() != 0:
        pytest.skip("root is an instructor of every class; the learners' side is tests/test_classroom.py")
    init_class(tmp_path / "class", grp.getgrgid(0).gr_name)
    monkeypatch.setenv("LAB_CLASS_DIR", str(tmp_path / "class"))
    monkeypatch.setenv("LAB_LEARNER", "ada")
    assert Store().path == lab_home() / "lab.sqlite"


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


# -- a damaged store is said, repaired from its backup, never silently lost ----------------------------
def _lab(args: list[str], home) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAB_HOME": str(home), "LAB_LEARNER": "ada"}
    env.pop("LAB_CLASS_DIR", None)
    return subprocess.run([sys.executable, "-m", "lessons", *args], capture_output=True, text=True, env=env,
                          cwd=os.getcwd())


def age_backup(home) -> None:
    """Make the backup look older than BACKUP_EVERY_S, as it is after ten minutes of work."""
    from lessons.engine.store_file import BACKUP_EVERY_S

    backup = home / "lab.sqlite.backup"
    assert backup.exists(), "the first writable open makes a backup"
    then = time.time() - BACKUP_EVERY_S - 1
    os.utime(backup, (then, then))


def test_a_cut_store_is_said_then_repaired_from_its_backup(tmp_path):
    home = tmp_path / "home"
    with Store(home / "lab.sqlite", learner="ada") as store:
        store.save_answer("stage1", "q1", "tokens are pieces of words")
    age_backup(home)
    with Store(home / "lab.sqlite", learner="ada") as store:  # backs up q1; what follows is only in the store
        for i in range(300):
            store.save_answer("stage2", f"q{i}", "x" * 500)
    size = (home / "lab.sqlite").stat().st_size
    with open(home / "lab.sqlite", "r+b") as file:
        file.truncate(size // 2)

    done = _lab(["progress"], home)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "the lab's store" in done.stderr and "is damaged" in done.stderr
    assert "python -m lessons repair-store" in done.stderr and "restores the backup of" in done.stderr

    done = _lab(["repair-store"], home)
    assert done.returncode == 0 and "restored the backup of" in done.stdout, done.stdout + done.stderr
    damaged = [path for path in home.iterdir() if ".damaged-" in path.name and not path.name.endswith(("-wal", "-shm"))]
    assert len(damaged) == 1 and damaged[0].stat().st_size == size // 2, "the damaged file is kept, as it was"
    with Store(home / "lab.sqlite", learner="ada") as store:
        assert store.answers() == {("stage1", "q1"): "tokens are pieces of words"}
    assert _lab(["progress"], home).returncode == 0


def test_an_emptied_store_is_damage_not_a_fresh_start(tmp_path):
    home = tmp_path / "home"
    with Store(home / "lab.sqlite", learner="ada") as store:
        store.save_answer("stage1", "q1", "kept in the backup")
    age_backup(home)
    Store(home / "lab.sqlite", learner="ada").close()  # backs up q1
    (home / "lab.sqlite").write_bytes(b"")
    done = _lab(["progress"], home)
    assert done.returncode == 2 and "the file is empty" in done.stderr, done.stderr
    assert _lab(["repair-store"], home).returncode == 0
    with Store(home / "lab.sqlite", learner="ada") as store:
        assert store.answers() == {("stage1", "q1"): "kept in the backup"}


def test_without_a_backup_repair_starts_fresh_and_keeps_the_damaged_file(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "lab.sqlite").write_bytes(b"not a database at all" * 100)
    assert "starts a fresh store" in _lab(["progress"], home).stderr
    done = _lab(["repair-store"], home)
    assert "no sound backup, so a fresh store starts" in done.stdout, done.stdout
    assert _lab(["progress"], home).returncode == 0
    assert any(".damaged-" in path.name for path in home.iterdir())


CREATOR = textwrap.dedent("""
    import sys, time
    from lessons.engine.store import Store
    path, index, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))  # every process opens the missing store at the same moment
    with Store(path, learner=f"p{index}") as store:
        for i in range(20):
            store.save_answer("stage1", f"q{i}", "a")
    with Store(path, learner=f"p{index}", read_only=True) as reader:
        assert len(reader.answers()) == 20
""")


def test_thirty_processes_creating_one_store_lose_nothing(tmp_path):
    for trial in range(3):
        path = tmp_path / f"trial{trial}" / "lab.sqlite"
        start = time.time() + 4.0  # after every interpreter has started
        processes = [subprocess.Popen([sys.executable, "-c", CREATOR, str(path), str(i), str(start)],
                                      stderr=subprocess.PIPE, text=True, cwd=os.getcwd()) for i in range(30)]
        errors = [p.communicate(timeout=120)[1] for p in processes]
        assert all(p.returncode == 0 for p in processes), "\n".join(e for e in errors if e)[-3000:]
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 30 * 20
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_of_the_previous_version_opens_and_is_migrated(tmp_path):
    from lessons.engine.store import MIGRATIONS, SCHEMA

    path = tmp_path / "lab.sqlite"
    with sqlite3.connect(path) as old:  # as stores were made before the schema had a version
        old.execute("PRAGMA journal_mode=WAL")
        old.executescript(SCHEMA)
        old.execute("INSERT INTO answers VALUES ('ada', 'stage1', 'q', 'an old answer', 1.0)")
    with Store(path, learner="ada") as store:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.answers() == {("stage1", "q"): "an old answer"}
