"""The mutation score's machinery: it mutates only the learner's code, runs the checks on each mutant, counts.

CI runs two mutants per stage (a fixed seed) so the mechanism cannot rot; the
full score is ``python -m lessons mutation-score``, an hours-long command.
"""
from __future__ import annotations

import json
import shutil

import pytest

from checks import mutation
from checks.warm_worker import WARM_WORKER_ENV
from lessons.engine.blanks import learner_spans
from lessons.engine.stages import STAGES


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.key)
def test_only_the_learners_code_is_mutated(stage, tmp_path):
    copy = tmp_path / stage.reference_file.name
    shutil.copy(stage.reference_file, copy)
    mutants, db = mutation.learner_mutants(stage.reference_file, copy, tmp_path / "session.sqlite")
    try:
        assert mutants, f"no mutant in the learner's code of {stage.key}"
        learner_lines = {line for line, _, _ in learner_spans(stage.reference_file.read_text())}
        given = [m for m in mutants if m.line not in learner_lines]
        assert not given, f"mutants in given code: {[m.key for m in given][:3]}"
        assert all(m.before != m.after for m in mutants)
        skipped = db.num_results  # every other mutant is marked skipped in Cosmic Ray's session
        assert db.num_work_items == len(mutants) + skipped and skipped > 0
    finally:
        db.close()


def test_a_blank_is_mutated_only_inside_its_expression():
    spans = {3: [(8, 20)]}
    assert mutation._inside((3, 8), (3, 12), spans)
    assert not mutation._inside((3, 2), (3, 6), spans), "left of the blank is given code"
    assert not mutation._inside((3, 18), (3, 24), spans), "it runs past the blank"
    assert mutation._inside((5, 0), (6, 4), {5: [(0, 30)], 6: [(0, 10)]}), "two whole region lines"
    assert not mutation._inside((5, 0), (7, 4), {5: [(0, 30)], 7: [(0, 10)]}), "line 6 is given code"


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.key)
def test_a_fixed_sample_of_mutants_is_run_and_counted(stage, tmp_path, monkeypatch, warm_worker):
    monkeypatch.setattr(mutation, "EQUIVALENT_FILE", tmp_path / "none.toml")
    monkeypatch.setenv(WARM_WORKER_ENV, str(warm_worker.socket_path))  # each mutant's worker is forked warm
    score = mutation.score_stage(stage, sample=2, seed=0, log=print)
    assert score.run == 2 and score.found >= 2
    assert sum(len(score.outcomes[k]) for k in ("killed", "timed out", "survived")) == 2, score.outcomes["error"]
    print(mutation.table([score]))


def test_a_mutant_listed_as_equivalent_is_not_run(tmp_path, monkeypatch):
    stage = STAGES[0]
    copy = tmp_path / stage.reference_file.name
    shutil.copy(stage.reference_file, copy)
    mutants, db = mutation.learner_mutants(stage.reference_file, copy, tmp_path / "session.sqlite")
    db.close()
    listed = tmp_path / "equivalent.toml"
    listed.write_text("".join(f'[[equivalent]]\nstage = "{stage.key}"\nmutant = {json.dumps(m.key)}\n'
                              'reason = "a test says so"\n\n' for m in mutants))  # a JSON string is a TOML one
    monkeypatch.setattr(mutation, "EQUIVALENT_FILE", listed)
    score = mutation.score_stage(stage, sample=None, seed=0, log=print)
    assert score.equivalent == len(mutants) and score.run == 0 and score.score is None


def test_every_listed_equivalent_is_a_mutant_of_its_reference(tmp_path):
    """An entry whose line was since rewritten matches no mutant and would silently stop counting: it must go."""
    listed = mutation.equivalents()
    for stage in STAGES:
        if stage.key not in listed:
            continue
        copy = tmp_path / stage.reference_file.name
        shutil.copy(stage.reference_file, copy)
        mutants, db = mutation.learner_mutants(stage.reference_file, copy, tmp_path / f"{stage.key}.sqlite")
        db.close()
        stale = set(listed[stage.key]) - {m.key for m in mutants}
        assert not stale, f"checks/equivalent_mutants.toml lists mutants {stage.key} no longer has: {sorted(stale)}"


def test_the_same_seed_picks_the_same_mutants(tmp_path):
    """--seed names a sample: the mutants come in the same order every time (Cosmic Ray's own order is random)."""
    stage = STAGES[0]
    orders = []
    for run in (1, 2):
        copy = tmp_path / str(run) / stage.reference_file.name
        copy.parent.mkdir()
        shutil.copy(stage.reference_file, copy)
        mutants, db = mutation.learner_mutants(stage.reference_file, copy, tmp_path / f"{run}.sqlite")
        db.close()
        orders.append([m.key for m in mutants])
    assert orders[0] == orders[1]
