"""A worker forked by the warm worker is the worker a cold start would run: same outcomes, same messages.

The project's tests run a hundred planted mistakes through ``checks/warm_worker.py`` to skip torch's import in
each; these tests are why that proves what a learner's cold run would show. Stage 2, the quickest whole stage,
with the reference solution plus one planted behaviour in a ``--lesson-file``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lessons.engine.paths import PROJECT_ROOT
from lessons.engine.stages import stage
from tests.checks_runner import CheckRun, run_checks, run_environment
from tests.mistakes.stage2 import MISTAKES

STAGE2 = stage("2")
SUPERVISOR_LINES = ("LoRA Kitchen", "The check run", "The checks ended")

PLANTED = {
    "a planted beginner mistake": None,  # MISTAKES[0], applied to the reference
    "a check that switches off its time limit and loops": (
        "\n\ndef is_valid_recipe(example):\n"
        "    import signal\n"
        "    signal.setitimer(signal.ITIMER_REAL, 0)\n"
        "    while True: pass\n"),  # one line, so the stack dump names the same line every time
    "learner code that calls os._exit": "\n\ndef is_valid_recipe(example):\n    import os\n    os._exit(0)\n",
    "a thread left running after the checks": (
        "\n\nimport threading as _threading, time as _time\n"
        "_original_format_recipe = format_recipe\n"
        "def format_recipe(example):\n"
        "    if not _threading.active_count() > 1:\n"
        "        _threading.Thread(target=_time.sleep, args=(10**6,)).start()\n"
        "    return _original_format_recipe(example)\n"),
}


def planted_file(folder: Path, case: str) -> Path:
    source = STAGE2.reference_file.read_text()
    extra = PLANTED[case]
    if extra is None:
        mistake = MISTAKES[0]
        source = source.replace(mistake.old, mistake.new)
    path = folder / STAGE2.reference_file.name
    path.write_text(source + (extra or ""))
    return path


def supervisor_lines(run: CheckRun) -> list[str]:
    """What the supervisor printed about the run (pytest's own last line has a time in it)."""
    return [line for line in run.output.splitlines() if line.startswith(SUPERVISOR_LINES)]


@pytest.mark.slow
@pytest.mark.parametrize("case", PLANTED)
def test_a_forked_worker_gives_the_outcomes_and_messages_of_a_cold_one(case, tmp_path, warm_worker):
    lesson = planted_file(tmp_path, case)
    extra = ["--check-timeout=3"] if "time limit" in case else []  # a short limit only where a check hangs
    forked_before = len(warm_worker.forked_pids())
    cold = run_checks("stage2", lesson_file=lesson, extra=extra, timeout=200)
    warm = run_checks("stage2", lesson_file=lesson, extra=extra, timeout=200, warm=warm_worker)
    assert len(warm_worker.forked_pids()) == forked_before + 1, "the warm run did not fork its worker"
    assert cold.results, cold.output[-3000:]
    assert warm.results == cold.results, f"cold:\n{cold.output[-3000:]}\nwarm:\n{warm.output[-3000:]}"
    assert warm.returncode == cold.returncode
    assert supervisor_lines(warm) == supervisor_lines(cold) != []
    print(f"{case}: cold {cold.seconds:.1f} s, warm {warm.seconds:.1f} s")


@pytest.mark.slow
def test_a_killed_supervisor_takes_its_forked_worker_with_it(tmp_path, warm_worker):
    lesson = planted_file(tmp_path, "a check that switches off its time limit and loops")
    forked_before = len(warm_worker.forked_pids())
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "pytest", "checks/stage2", "-q", "-p", "no:cacheprovider", "--no-record",
         f"--lesson-file={lesson}", "--check-timeout=120"], cwd=PROJECT_ROOT, env=run_environment(warm_worker),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(warm_worker.forked_pids()) == forked_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(warm_worker.forked_pids()) == forked_before + 1, "the supervisor's worker was never forked"
        worker = warm_worker.forked_pids()[-1]
        time.sleep(2)  # into its checks (the loop has no end, and its 120 s limit is far away)
        assert Path(f"/proc/{worker}").exists(), "the worker ended on its own: this test would prove nothing"
    finally:
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists(), "the forked worker outlived its killed supervisor"


def test_a_run_the_warm_worker_cannot_fork_as_asked_is_refused_in_words(monkeypatch, warm_worker):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # read by torch when it is imported: a fork cannot honour it
    run = run_checks("stage2", reference=True, warm=warm_worker, timeout=120)
    assert run.returncode == 1 and run.results == {}
    assert "the checks did not run" in run.output and "OMP_NUM_THREADS" in run.output, run.output[-2000:]


def test_the_warm_worker_forks_only_a_check_run(warm_worker):
    from checks.warm_worker import ForkedWorker, WarmWorkerError

    with pytest.raises(WarmWorkerError, match="runs .* -m pytest"):
        ForkedWorker(warm_worker.socket_path, [sys.executable, "-c", "print(1)"], cwd=PROJECT_ROOT,
                     env=dict(os.environ))
