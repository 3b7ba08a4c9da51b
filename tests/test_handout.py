"""`python -m lessons handout`: a learner copy that withholds the full solutions and keeps the hints and partials."""
import json

from dashboard.logic import lesson
from lessons.__main__ import main
from lessons.engine import blanks
from lessons.engine.stages import STAGES


def test_the_handout_keeps_hints_and_partials_and_withholds_only_the_full_solutions(tmp_path, monkeypatch, capsys):
    out = tmp_path / "handout"
    assert main(["handout", "--out", str(out)]) == 0
    assert "hints and partial solutions" in capsys.readouterr().out
    assert not (out / "lessons" / "reference").exists()
    assert (out / "lessons" / STAGES[0].learner_file.name).read_text() == STAGES[0].learner_file.read_text()

    monkeypatch.setattr(blanks, "REFERENCE_DIR", out / "lessons" / "reference")  # as the handout's own code sees it
    monkeypatch.setattr(blanks, "LESSONS_DIR", out / "lessons")
    partials = 0
    for stage in STAGES:
        reference = blanks.generate(stage.reference_file)[1]
        kept = blanks.exercises_for(stage.module)
        assert [(e.function, e.kind, e.learner_line, e.hints, e.partial) for e in kept] == \
               [(e.function, e.kind, e.learner_line, e.hints, e.partial) for e in reference], stage.module
        assert all(e.solution == [] for e in kept)
        saved = blanks.hints_file(stage.module).read_text()
        for exercise in reference:
            shown = " ".join(exercise.hints + exercise.partial)
            for line in (line.strip() for line in exercise.solution):
                if len(line) > 20 and line not in shown:
                    assert json.dumps(line)[1:-1] not in saved, f"{stage.module}: the solution line {line!r} is in it"
        partials += sum(bool(e.partial) for e in kept)
    assert partials, "some exercise has a partial solution to keep"

    pick = lesson.HintExercise("pick_device#1", blanks.exercises_for("stage1_concepts")[0])
    assert pick.levels() == ["hint", "partial"], "the dashboard offers the hint and the partial, no full solution"


def test_without_reference_or_hints_there_are_no_exercises(tmp_path, monkeypatch):
    monkeypatch.setattr(blanks, "REFERENCE_DIR", tmp_path / "reference")
    monkeypatch.setattr(blanks, "LESSONS_DIR", tmp_path)
    assert blanks.exercises_for("stage1_concepts") == []
