"""Run one stage's learner checks in a fresh process, as a learner would, and read the outcome."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from checks.warm_worker import WarmWorker
from lessons.engine.paths import PROJECT_ROOT


@dataclass
class CheckRun:
    results: dict            # check name -> {"outcome", "message", "title"}
    output: str              # what the learner would see in the terminal
    returncode: int
    seconds: float

    @property
    def outcomes(self) -> dict[str, str]:
        return {name: r["outcome"] for name, r in self.results.items()}

    def failed(self) -> dict[str, str]:
        return {name: r["message"] for name, r in self.results.items() if r["outcome"] != "passed"}


def run_environment(warm: WarmWorker | None = None) -> dict[str, str]:
    """The environment of a check run started by the project's tests (and of the warm worker that forks them)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return warm.env(env) if warm else env


def run_checks(stage_key: str, *, reference: bool = False, lesson_file: Path | None = None,
               extra: list[str] | None = None, timeout: float = 600, warm: WarmWorker | None = None) -> CheckRun:
    """``warm``: the supervisor's worker is forked by this warm worker (the same worker, started faster)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pytest", f"checks/{stage_key}", "-q", "-p", "no:cacheprovider",
                   "--no-record", f"--report-json={report}"]
        if reference:
            command.append("--reference")
        if lesson_file:
            command.append(f"--lesson-file={lesson_file}")
        command += extra or []
        started = time.perf_counter()
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                              env=run_environment(warm))
        seconds = time.perf_counter() - started
        results = json.loads(report.read_text()).get(stage_key, {}) if report.exists() else {}
    return CheckRun(results, done.stdout + done.stderr, done.returncode, seconds)
