"""A check run counts only when it is whole and honest, and learner code cannot keep it from ending.

Each test runs ``pytest checks/stage2`` as a learner would, in a copy of the
project whose ``lessons/stage2_data.py`` is the reference solution plus one
planted behaviour, and reads what the supervisor printed and recorded. Stage 2
because its checks are the quickest whole stage (about 7 s on the 2-core CPU).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lessons.engine.limits import LIMITS
from lessons.engine.paths import PROJECT_ROOT
from lessons.engine.progress import run_passes_stage
from lessons.engine.registry import collect, registry, stage_checks
from lessons.engine.stages import content_hash, file_hash, stage
from lessons.engine.store import Store
from lessons.engine.store_file import BACKUP_EVERY_S

STAGE2 = stage("2")
FIRST_CHECK = stage_checks("stage2")[0]


class Project:
    """A copy of the project with its own lab home: its store and learner files are the test's own."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.learner_file = root / "lessons" / STAGE2.learner_file.name

    def plant(self, extra: str = "") -> str:
        """The learner file becomes the reference solution followed by ``extra``; returns the text."""
        text = STAGE2.reference_file.read_text() + extra
        self.learner_file.write_text(text)
        return text

    def checks(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, "LAB_HOME": str(self.home), "LAB_LEARNER": "ada", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("LAB_CLASS_DIR", None)
        return subprocess.run([sys.executable, "-m", "pytest", *(args or ["checks/stage2"]), "-q",
                               "-p", "no:cacheprovider"], cwd=self.root, env=env, capture_output=True,
                              timeout=timeout)

    def latest_run(self) -> dict | None:
        with Store(self.home / "lab.sqlite", learner="ada") as store:
            return store.latest_check_run("stage2")


@pytest.fixture
def project(tmp_path) -> Project:
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for folder in ("lessons", "checks", "data"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder, ignore=ignore)
    shutil.copy(PROJECT_ROOT / "pytest.ini", root / "pytest.ini")
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(Path(os.environ["LAB_HOME"]) / "models", target_is_directory=True)
    return Project(root, home)


def text(done: subprocess.CompletedProcess) -> str:
    return (done.stdout + done.stderr).decode(errors="replace")


def test_the_registry_lists_exactly_the_checks_there_are():
    collected = collect()
    assert {key: tuple(names) for key, names in collected.items()} == registry(), (
        "checks/registry.json differs from the checks in checks/: run `python -m lessons registry`")
    for key, names in collected.items():
        assert len(names) == len(set(names)), f"{key} has two checks of the same name"


@pytest.mark.slow
def test_a_run_of_some_checks_never_completes_a_stage(project):
    project.plant()
    for partial in ([f"checks/stage2/test_data.py::{FIRST_CHECK}"], ["checks/stage2", "-k", FIRST_CHECK]):
        done = project.checks(*partial)
        assert done.returncode == 0, text(done)
        assert "did not run in this run, so the stage is not complete" in text(done), text(done)
        assert "Stage complete" not in text(done)
        run = project.latest_run()
        assert run["passed"] == 1 and run["total"] == len(stage_checks("stage2")) and not run["complete"]
        assert not run_passes_stage(run)

    done = project.checks()
    assert done.returncode == 0 and "Stage complete" in text(done), text(done)
    run = project.latest_run()
    assert run["complete"] and run_passes_stage(run) and run["file_hash"] == file_hash(project.learner_file)


@pytest.mark.slow
def test_the_hash_is_of_the_bytes_that_were_imported(project):
    pristine = STAGE2.learner_file.read_text()
    (project.root / "lessons" / "pristine.txt").write_text(pristine)
    planted = project.plant("\nimport pathlib as _p\n"
                            "_p.Path(__file__).write_text(_p.Path(__file__).with_name('pristine.txt').read_text())\n")
    done = project.checks()
    assert done.returncode == 0, text(done)
    assert project.learner_file.read_text() == pristine, "the planted file rewrote itself"
    run = project.latest_run()
    assert run["file_hash"] == content_hash(planted.encode()) != file_hash(project.learner_file)
    assert "Your file changed while the checks ran" in text(done) and "Stage complete" not in text(done)


@pytest.mark.slow
def test_a_check_that_switches_off_its_time_limit_is_stopped_and_named(project):
    planted = project.plant("\n\ndef is_valid_recipe(example):\n"
                            "    import signal\n"
                            "    signal.setitimer(signal.ITIMER_REAL, 0)\n"
                            "    while True:\n"
                            "        pass\n")
    loop_line = len(planted.splitlines()) - 1  # `while True:` or `pass`: the line the stack dump names
    started = time.monotonic()
    done = project.checks("checks/stage2", "--check-timeout=3", timeout=120)
    seconds = time.monotonic() - started
    assert done.returncode == 1, text(done)
    run = project.latest_run()
    hung = [r for r in run["results"] if "ran longer than 3 s and was stopped" in r["message"]]
    assert len(hung) == 1, run["results"]
    assert f"lessons/stage2_data.py:{loop_line}" in hung[0]["message"] or \
        f"lessons/stage2_data.py:{loop_line + 1}" in hung[0]["message"], hung[0]["message"]
    assert f"LoRA Kitchen: {hung[0]['check_name']} ran longer than 3 s" in text(done)
    assert not run["complete"] and not run_passes_stage(run)
    assert any(r["outcome"] == "passed" for r in run["results"]), "the checks that finished are kept"
    print(f"a switched-off time limit was stopped in {seconds:.1f} s (limit 3 s + {LIMITS.check_kill_grace_s} s)")


@pytest.mark.slow
def test_a_thread_left_running_does_not_keep_the_run_alive(project):
    project.plant("\n\nimport threading as _threading, time as _time\n"
                  "_original_format_recipe = format_recipe\n"
                  "def format_recipe(example):\n"
                  "    if not _threading.active_count() > 1:\n"
                  "        _threading.Thread(target=_time.sleep, args=(10**6,)).start()\n"
                  "    return _original_format_recipe(example)\n")
    done = project.checks(timeout=200)
    assert "a thread or process your code started was still running" in text(done), text(done)
    run = project.latest_run()
    assert run["complete"] and run_passes_stage(run), "every check passed; the stray thread was only stopped"


@pytest.mark.slow
def test_exiting_python_from_learner_code_is_a_failure(project):
    project.plant("\n\ndef is_valid_recipe(example):\n    import os\n    os._exit(0)\n")
    done = project.checks()
    assert done.returncode == 1, text(done)
    assert "The check run ended before its checks did (exit status 0)" in text(done)
    run = project.latest_run()
    assert not run["complete"] and not run_passes_stage(run)
    assert any("does your code call os._exit" in r["message"] for r in run["results"]), run["results"]


@pytest.mark.slow
def test_a_flood_of_output_is_cut_and_the_summary_still_shows(project):
    project.plant("\nprint('spam ' * 6_000_000)\n")  # 30 MB at import
    done = project.checks("checks/stage2", "-s")
    output = done.stdout + done.stderr
    limit = LIMITS.check_output_head_bytes + LIMITS.check_output_tail_bytes
    assert len(output) < limit + 10_000, f"{len(output):,} bytes reached the terminal"
    assert b"bytes of output left out" in output
    total = len(stage_checks("stage2"))
    assert f"LoRA Kitchen stage 2: {total} of {total} checks pass on lessons/stage2_data.py.".encode() in output


def _results(project, *args):
    """Run the stage 2 checks in the project; the outcome and message of every check, by name."""
    report = project.home / "report.json"
    done = project.checks("checks/stage2", f"--report-json={report}", *args)
    import json

    return json.loads(report.read_text())["stage2"], text(done)


@pytest.mark.slow
def test_a_function_that_hangs_costs_one_time_limit_and_names_its_own_line(project):
    planted = project.plant("\n\ndef format_recipe(example):\n"
                            "    while True:\n"
                            "        example = dict(example)\n")
    loop_line = len(planted.splitlines())
    results, output = _results(project, "--check-timeout=2")
    stopped = [r for r in results.values() if "ran longer than 2 s" in r["message"]]
    skipped = [r for r in results.values() if r["outcome"] == "skipped"]
    assert len(stopped) == 1, output[-3000:]
    assert f"open:     lessons/stage2_data.py:{loop_line} (format_recipe)" in stopped[0]["message"] or \
        f"open:     lessons/stage2_data.py:{loop_line - 1} (format_recipe)" in stopped[0]["message"], stopped[0]
    assert skipped and all(f"format_recipe ran past the time limit in {stopped[0]['name']}" in r["message"]
                           for r in skipped), skipped


@pytest.mark.slow
def test_one_bug_is_told_once_and_named_after(project):
    project.plant("\n\ndef clean_text(text):\n    raise ValueError('a planted bug')\n")
    results, output = _results(project)
    again = [r for r in results.values() if r["message"].startswith("same failure as ")]
    told = {r["name"]: r["message"] for r in results.values() if r["outcome"] == "failed" and r not in again}
    words = ["\n".join(line for line in m.splitlines() if "called:" not in line) for m in told.values()]
    assert any("a planted bug" in message for message in told.values())
    assert len(words) == len(set(words)), "a failure told twice in full"
    assert again and all(r["message"].split()[3] in told for r in again), [r["message"] for r in again]


def test_reset_starts_one_stage_again_and_keeps_the_learners_version(project):
    env = {**os.environ, "LAB_HOME": str(project.home)}
    work = project.plant("\n# my work\n")
    done = subprocess.run([sys.executable, "-m", "lessons", "reset", "2"], cwd=project.root, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert project.learner_file.read_text() == STAGE2.learner_file.read_text(), "pristine again"
    kept = list((project.home / "backups").glob("stage2_data.*.py"))
    assert len(kept) == 1 and kept[0].read_text() == work
    other = project.root / "lessons" / stage("3").learner_file.name
    assert other.read_text() == stage("3").learner_file.read_text(), "other stages untouched"
    wrong = subprocess.run([sys.executable, "-m", "lessons", "reset", "9"], cwd=project.root, env=env,
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "no stage 'stage9'" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_readmes_troubleshooting_numbers_are_the_limits():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Troubleshooting"):readme.index("## For developers")]
    for said in (f"longer than {LIMITS.check_timeout_s:.0f} s", f"killed {LIMITS.check_kill_grace_s:.0f} s later",
                 f"within {LIMITS.exit_grace_s:.0f} s", f"the first {LIMITS.check_output_head_bytes:,}",
                 f"the last {LIMITS.check_output_tail_bytes:,} bytes",
                 f"over {LIMITS.own_dataset_max_bytes // 1_000_000} MB", f"over {LIMITS.own_dataset_max_rows:,} rows",
                 f"a field over {LIMITS.own_dataset_max_field_chars:,} characters",
                 f"at most {BACKUP_EVERY_S / 60:.0f} minutes old"):
        assert said in section, f"the README's troubleshooting section should say {said!r} (lessons/engine/limits.py)"
