"""Every stage's learner checks, proven three ways (the heart of the project's tests):

1. every check passes on the reference solution;
2. every check fails on the pristine learner file, with the one-line
   "not implemented yet — open FILE:LINE" message and no traceback;
3. every planted beginner mistake (``tests/mistakes/stageN.py``) is caught.

Each run is a fresh ``pytest checks/<stage>`` process, exactly as a learner runs it; a planted mistake's run
forks its worker from a warm worker (``checks/warm_worker.py``, proven the same by tests/test_warm_worker.py).
"""
from __future__ import annotations

import importlib
import re

import pytest

from lessons.engine.stages import STAGES
from tests.checks_runner import run_checks
from tests.mistakes import Mistake

NOT_DONE = re.compile(r"^(not implemented yet|blank ___ not filled in yet) — open (lessons/stage\w+\.py):(\d+) \((\w+)\)$")
STAGE_IDS = [stage.key for stage in STAGES]


def all_mistakes() -> list[Mistake]:
    found = []
    for stage in STAGES:
        try:
            module = importlib.import_module(f"tests.mistakes.{stage.key}")
        except ModuleNotFoundError:
            continue
        found += module.MISTAKES
    return found


@pytest.mark.slow
@pytest.mark.parametrize("key", STAGE_IDS)
def test_every_check_passes_on_the_reference(key):
    run = run_checks(key, reference=True)
    assert run.results, f"no checks ran for {key}:\n{run.output[-3000:]}"
    assert len(run.results) >= 3, f"{key} has only {len(run.results)} checks"
    assert run.failed() == {}, f"checks failing on the reference of {key}:\n{run.output[-5000:]}"
    assert run.returncode == 0
    print(f"{key}: {len(run.results)} checks passed on the reference in {run.seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("key", STAGE_IDS)
def test_every_check_fails_kindly_on_the_pristine_learner_file(key):
    stage = next(s for s in STAGES if s.key == key)
    run = run_checks(key)
    assert run.results, f"no checks ran for {key}:\n{run.output[-3000:]}"
    lines = stage.learner_file.read_text().splitlines()
    for name, result in run.results.items():
        assert result["outcome"] == "todo", f"{key}::{name} should fail as not implemented: {result}"
        match = NOT_DONE.match(result["message"])
        assert match, f"{key}::{name} message is not the one-line TODO message: {result['message']!r}"
        assert match.group(2) == f"lessons/{stage.module}.py"
        line = lines[int(match.group(3)) - 1]
        assert "raise todo()" in line or "___" in line, f"{key}::{name} points at line {match.group(3)}: {line!r}"
    assert "Traceback" not in run.output and "\nE   " not in run.output, run.output[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("mistake", all_mistakes(), ids=lambda m: f"{m.stage}: {m.name}")
def test_planted_mistake_is_caught(mistake, tmp_path, warm_worker):
    stage = next(s for s in STAGES if s.key == mistake.stage)
    source = stage.reference_file.read_text()
    assert source.count(mistake.old) == mistake.count, (
        f"the mistake's text appears {source.count(mistake.old)} times in {stage.reference_file.name}, "
        f"expected {mistake.count}: update tests/mistakes/{mistake.stage}.py")
    planted = tmp_path / stage.reference_file.name
    planted.write_text(source.replace(mistake.old, mistake.new))
    run = run_checks(mistake.stage, lesson_file=planted, warm=warm_worker)
    failures = run.failed()
    assert failures, f"no check of {mistake.stage} caught: {mistake.name}\n{run.output[-3000:]}"
    if mistake.caught_by:
        assert mistake.caught_by in failures, f"{mistake.caught_by} did not catch it; these did: {list(failures)}"
    for name, message in failures.items():
        assert "Traceback" not in message and message.strip(), f"{name} failed without a readable message"
        if mistake.never_says:
            assert mistake.never_says not in message, f"{name}'s message is about another mistake: {message}"
