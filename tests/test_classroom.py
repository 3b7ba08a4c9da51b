"""A class on one machine with real Unix accounts: who is who, who may write what, what verification catches.

CI runs as root, so each test makes its own accounts (``tests/accounts.py``) and a
class folder other accounts can enter. The learners' check runs are real
``pytest checks/stage7`` runs from each learner's own copy of the project: stage 7
is the quickest stage (seconds) and needs no model, which keeps the file under
a minute on two cores; the concurrency test writes through the store's own API,
as the check harness and the training jobs do.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lessons.engine.classroom import (LEARNER_MODE, ClassError, account_name, account_uid, init_class, learner_folders,
                                      load_class, read_roster)
from lessons.engine.paths import PROJECT_ROOT
from lessons.engine.registry import stage_checks
from lessons.engine.stages import STAGES_BY_KEY
from lessons.engine.store import Store
from lessons.engine.verification import (SELF_REPORTED, SNAPSHOT_CHANGED, VERIFICATION_FAILED, VERIFIED,
                                         class_marks, verify)
from tests.accounts import accounts, popen_as, private_home, run_as, shared_folder, unique_prefix

PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")
STAGE = STAGES_BY_KEY["stage7"]


def learner_env(home: Path, class_dir: Path, **extra) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("LAB_", "PYTEST"))}
    return {**env, "LAB_HOME": str(home), "LAB_CLASS_DIR": str(class_dir), "TMPDIR": str(home),  # nothing left in /tmp
            "PYTHONDONTWRITEBYTECODE": "1", **extra}


def learner_checkout(parent: Path, account: str) -> Path:
    """The learner's own copy of the project (what they edit), theirs to write; the venv is the server's."""
    clone = parent / f"clone-{account}"
    for part in ("lessons", "checks", "data"):
        shutil.copytree(PROJECT_ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pytest.ini", clone / "pytest.ini")
    user = pwd.getpwnam(account)
    for path in [clone, *clone.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    return clone


def run_checks_as(account: str, clone: Path, env: dict) -> subprocess.CompletedProcess:
    return run_as(account, [PYTHON, "-m", "pytest", f"checks/{STAGE.key}", "-q", "-p", "no:cacheprovider"],
                  cwd=clone, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def klass():
    """A class folder, its instructors' group (one instructor account) and four learner accounts."""
    prefix = unique_prefix("lkc")
    with shared_folder("class") as parent, accounts(prefix, 5, group=f"{prefix}ins", members=1) as names:
        config = init_class(parent / "class", f"{prefix}ins")
        yield {"config": config, "parent": parent, "instructor": names[0], "learners": names[1:]}


def python_as(account: str, env: dict, code: str) -> subprocess.CompletedProcess:
    return run_as(account, [PYTHON, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                  timeout=120)


def test_a_learner_is_their_account_and_no_one_else_writes_their_folder(klass):
    config, parent = klass["config"], klass["parent"]
    ada, bob, cy = klass["learners"][:3]
    ada_env = learner_env(private_home(parent, ada), config.folder, LAB_LEARNER=bob)  # a name they set is ignored
    done = python_as(ada, ada_env, "from lessons.engine.store import Store\n"
                                   "s = Store(); s.save_answer('stage1', 'q', 'mine'); print(s.path, s.learner)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(config.folder / ada / "lab.sqlite"), ada]
    folder = config.folder / ada
    info = folder.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (
        pwd.getpwnam(ada).pw_uid, config.group_id, LEARNER_MODE)

    bob_env = learner_env(private_home(parent, bob), config.folder)
    attempts = python_as(bob, bob_env, f"""
import os, sqlite3
from pathlib import Path
for attempt in (lambda: open('{folder}/lab.sqlite', 'r+b'), lambda: open('{folder}/extra', 'w'),
                lambda: os.listdir('{config.folder}'), lambda: os.rename('{folder}', '{config.folder}/gone'),
                lambda: sqlite3.connect('file:{folder}/lab.sqlite?mode=ro', uri=True).execute('select 1').fetchall()):
    try:
        attempt(); print('allowed')
    except (PermissionError, sqlite3.OperationalError):
        print('refused')
""")
    assert attempts.stdout.split() == ["refused"] * 5, attempts.stderr

    # bob makes a folder named after cy before cy starts: it is not cy's, and cy's lab says so
    squat = python_as(bob, bob_env, f"import os; os.mkdir('{config.folder / cy}'); os.chmod('{config.folder / cy}', 0o2750)")
    assert squat.returncode == 0, squat.stderr
    refused = python_as(cy, learner_env(private_home(parent, cy), config.folder),
                        "from lessons.engine.store import Store\nStore()")
    assert refused.returncode != 0
    assert f"belongs to {bob}, not to {cy}" in refused.stderr and "Nothing was written" in refused.stderr
    problems = {name: problem for name, _, problem in learner_folders(config)}
    assert problems[ada] == "" and problems[cy] == f"it belongs to {bob}, not to {cy}"
    assert [m.learner for m in class_marks(config) if m.problem] == [cy]


def test_the_instructor_reads_every_learner_and_is_never_one(klass):
    config, parent, instructor = klass["config"], klass["parent"], klass["instructor"]
    ada = klass["learners"][0]
    assert python_as(ada, learner_env(private_home(parent, ada), config.folder),
                     "from lessons.engine.store import Store\nStore().save_answer('stage1', 'q', 'mine')").returncode == 0
    home = private_home(parent, instructor)
    read = python_as(instructor, learner_env(home, config.folder), f"""
from lessons.engine.store import Store
own = Store(); own.save_answer('stage1', 'q', 'instructor notes')
print(own.path)
print(Store('{config.folder / ada / "lab.sqlite"}', read_only=True, learner='{ada}').answers())
""")
    assert read.returncode == 0, read.stderr
    own_path, answers = read.stdout.splitlines()
    assert own_path == str(home / "lab.sqlite")  # the instructor's own work stays in their LAB_HOME
    assert "mine" in answers
    assert [name for name, _, _ in learner_folders(config)] == [ada]


def test_init_refuses_a_missing_group_and_a_roster_with_unknown_accounts(tmp_path):
    with pytest.raises(ClassError, match="groupadd no-such-group-lk"):
        init_class(tmp_path / "c", "no-such-group-lk")
    roster = tmp_path / "roster.csv"
    roster.write_text("login,name\nroot,Root\nnobody-lk-xyz,Nobody\n")
    assert read_roster(roster) == ["root", "nobody-lk-xyz"]
    with pytest.raises(ClassError, match="'nobody-lk-xyz', which is no account"):
        init_class(tmp_path / "c", "root", roster=read_roster(roster))
    roster.write_text("ada lovelace\n")
    with pytest.raises(ClassError, match="line 1: 'ada lovelace' is not a login name"):
        read_roster(roster)


def always_passing_checks(names: tuple[str, ...]) -> str:
    """A check file with every name of the stage's registry, each passing whatever the code does."""
    params: dict[str, list[str]] = {}
    for name in names:
        base, _, param = name.partition("[")
        params.setdefault(base, []).append(param.rstrip("]"))
    lines = ["import pytest", ""]
    for base, values in params.items():
        if values == [""]:
            lines += [f"def {base}():", "    pass", ""]
        else:
            lines += [f"@pytest.mark.parametrize('case', {values!r})", f"def {base}(case):", "    pass", ""]
    return "\n".join(lines)


def write_hand_made_pass(account: str, env: dict) -> None:
    """'Passed' rows written straight into the learner's own store, as a learner could."""
    names = list(stage_checks(STAGE.key))
    code = f"""
from lessons.engine.store import Store
from lessons.engine.stages import STAGES_BY_KEY, file_hash
results = [{{"name": n, "outcome": "passed"}} for n in {names!r}]
Store().record_check_run("{STAGE.key}", "lessons/{STAGE.learner_file.name}", "0123456789abcdef", results, complete=True)
"""
    done = python_as(account, env, code)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_verify_tells_real_passes_from_hand_written_faked_and_changed_ones(klass):
    config, parent = klass["config"], klass["parent"]
    honest, forger, cheat, editor = klass["learners"]
    # `class init` run again, as the instructor's command: it makes the verifier account when there is none
    made = subprocess.run([PYTHON, "-m", "lessons", "class", "init", str(config.folder), "--instructors",
                           config.instructors], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0 and account_uid(config.verifier) is not None, made.stdout + made.stderr
    clones = {name: learner_checkout(parent, name) for name in (honest, forger, cheat, editor)}
    envs = {name: learner_env(private_home(parent, name), config.folder) for name in clones}

    shutil.copy(STAGE.reference_file, clones[honest] / "lessons" / STAGE.learner_file.name)
    ran = run_checks_as(honest, clones[honest], envs[honest])
    assert ran.returncode == 0, ran.stdout[-2000:]

    write_hand_made_pass(forger, envs[forger])

    # cheat's stage 7 is still all TODOs; a conftest.py beside their lessons turns every failure into a pass
    (clones[cheat] / "conftest.py").write_text(
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n")
    os.chown(clones[cheat] / "conftest.py", pwd.getpwnam(cheat).pw_uid, -1)
    faked = run_checks_as(cheat, clones[cheat], envs[cheat])
    assert "32 of 32 checks pass" in faked.stdout, faked.stdout[-2000:]

    # editor's stage 7 is all TODOs too; they replace the stage's check files by ones that always pass
    checks = clones[editor] / "checks" / STAGE.key
    for path in checks.glob("test_*.py"):
        path.unlink()
    (checks / "test_all.py").write_text(always_passing_checks(stage_checks(STAGE.key)))
    os.chown(checks / "test_all.py", pwd.getpwnam(editor).pw_uid, -1)
    edited = run_checks_as(editor, clones[editor], envs[editor])
    assert "32 of 32 checks pass" in edited.stdout, edited.stdout[-2000:]

    before = {m.learner: m.marks[STAGE.key].state for m in class_marks(config)}
    assert before == {honest: SELF_REPORTED, forger: SELF_REPORTED, cheat: SELF_REPORTED, editor: SELF_REPORTED}

    status = subprocess.run([PYTHON, "-m", "lessons", "class", "verify", "--all", "--dir", str(config.folder)],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert status.returncode == 0, status.stderr
    after = {m.learner: m.marks[STAGE.key] for m in class_marks(config)}
    assert after[honest].state == VERIFIED
    assert after[forger].state == SELF_REPORTED and "no snapshot" in after[forger].detail
    assert after[cheat].state == VERIFICATION_FAILED and "not implemented yet" in after[cheat].detail
    assert after[editor].state == VERIFICATION_FAILED and "32 of 32 checks did not pass" in after[editor].detail

    # the honest learner's snapshot is theirs: changing it afterwards shows, and is never what runs
    snapshot = next((config.folder / honest / "snapshots").iterdir())
    run_as(honest, ["sh", "-c", f"chmod u+w {snapshot} && echo '# changed' >> {snapshot}"], check=True)
    assert class_marks(config, honest)[0].marks[STAGE.key].state == SNAPSHOT_CHANGED

    table = subprocess.run([PYTHON, "-m", "lessons", "class", "status", "--dir", str(config.folder)],
                           cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60).stdout
    assert [line.split()[0] for line in table.splitlines()[1:5]] == sorted([honest, forger, cheat, editor])


def test_verify_needs_root_and_says_how(klass, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    from lessons.engine.verification import run_checks_sandboxed

    with pytest.raises(ClassError, match="(?s)needs root.*sudo"):
        run_checks_sandboxed(klass["config"], STAGE.key, b"")


PUBLISHER = """
import sys, time
from lessons.engine.classroom import active_class, publish_snapshot
from lessons.engine.stages import content_hash
from lessons.engine.store import Store
steps = int(sys.argv[1])
store = Store()
content = b"def clean_examples(rows):\\n    return rows\\n"
publish_snapshot(active_class(), "stage7", content, content_hash(content))
store.record_check_run("stage7", "lessons/stage7_own_dataset.py", content_hash(content),
                       [{"name": f"test_{n}", "outcome": "passed"} for n in range(30)], complete=True)
run = store.start_run("train", {"steps": steps}, name="tiny")
for step in range(1, steps + 1):
    store.log_metric(run, step, loss=3.0 / step, tokens_per_s=100.0)
store.update_run(run, status="finished")
store.save_evaluation("stage5", "perplexity_after", 12.5, run_id=run)
store.save_answer("stage5", "why", "because")
store.save_generation("stage6", "custom", "base", "Recipe:", " soup [END]")
print("done")
"""


@pytest.mark.slow
def test_thirty_learners_publish_at_once_and_every_record_arrives_once(tmp_path):
    steps = 40
    prefix = unique_prefix("lkt")
    with shared_folder("class30") as parent, accounts(prefix, 31, group=f"{prefix}ins") as names:
        config = init_class(parent / "class", f"{prefix}ins")
        learners, victim = names[:30], names[30]
        processes = [popen_as(name, [PYTHON, "-c", PUBLISHER, str(steps)], cwd=PROJECT_ROOT,
                              env=learner_env(private_home(parent, name), config.folder),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for name in learners]
        # one more learner is killed in the middle of their writes
        doomed = popen_as(victim, [PYTHON, "-c", PUBLISHER, "100000"], cwd=PROJECT_ROOT,
                          env=learner_env(private_home(parent, victim), config.folder))
        outputs = [process.communicate(timeout=300) for process in processes]
        assert [process.returncode for process in processes] == [0] * 30, [err for _, err in outputs if err][:1]
        store_file = config.folder / victim / "lab.sqlite"
        while not (store_file.exists() and _metric_count(store_file) > 50):
            time.sleep(0.1)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()

        for name in learners:
            with Store(config.folder / name / "lab.sqlite", read_only=True, learner=name) as store:
                (run,) = store.runs("train")
                assert [m["step"] for m in store.metrics(run["id"])] == list(range(1, steps + 1))
                assert run["status"] == "finished"
                assert len(store.latest_check_run("stage7")["results"]) == 30
                assert len(store.evaluations("stage5")) == len(store.generations("stage6")) == 1
                assert store.answers() == {("stage5", "why"): "because"}
        with Store(store_file, read_only=True, learner=victim) as store:
            (run,) = store.runs("train")
            assert run["status"] == "running" and len(store.latest_check_run("stage7")["results"]) == 30
            steps_logged = [m["step"] for m in store.metrics(run["id"])]
            assert steps_logged == list(range(1, len(steps_logged) + 1))  # every step whole, none half-written

        marks = class_marks(config)
        assert sorted(m.learner for m in marks) == sorted(names)
        table = subprocess.run([PYTHON, "-m", "lessons", "class", "status", "--dir", str(config.folder)],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60).stdout
        assert sorted(line.split()[0] for line in table.splitlines()[1:32]) == sorted(names)


def _metric_count(path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_the_verifier_must_be_neither_an_instructor_nor_a_learner(klass):
    import dataclasses

    from lessons.engine.verification import run_checks_sandboxed

    ada = klass["learners"][0]
    assert python_as(ada, learner_env(private_home(klass["parent"], ada), klass["config"].folder),
                     "from lessons.engine.store import Store\nStore()").returncode == 0
    for account in (klass["instructor"], ada, "root"):
        config = dataclasses.replace(klass["config"], verifier=account)
        with pytest.raises(ClassError, match="not root, not an instructor, not a learner"):
            run_checks_sandboxed(config, STAGE.key, b"")
