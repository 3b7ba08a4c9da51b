"""The generator that makes learner files from reference solutions (lessons/engine/blanks.py)."""
from __future__ import annotations

import ast

import pytest

from lessons.engine import blanks
from lessons.engine.blanks import MarkerError, TODO_IMPORT, exercises_for, generate, main, reference_files, transform
from lessons.engine.stages import STAGES

HEADER = TODO_IMPORT + "\n\n"


def test_region_becomes_todo_with_hint_and_keeps_indentation():
    source = HEADER + (
        "def f(x):\n"
        "    y = 1\n"
        "    ### BEGIN SOLUTION\n"
        "    ### HINT: What is x plus y?\n"
        "    ### HINT: Return it.\n"
        "    ### PARTIAL: z = x + ...\n"
        "    z = x + y\n"
        "    return z\n"
        "    ### END SOLUTION\n")
    learner, exercises = transform(source)
    assert "    # TODO: What is x plus y?\n    #       Return it.\n    raise todo()\n" in learner
    assert "z = x + y" not in learner and "PARTIAL" not in learner and "y = 1" in learner
    [exercise] = exercises
    assert (exercise.function, exercise.kind, exercise.hints, exercise.partial) == (
        "f", "todo", ["What is x plus y?", "Return it."], ["z = x + ..."])
    assert exercise.solution == ["    z = x + y", "    return z"]
    assert learner.splitlines()[exercise.learner_line - 1].strip() == "raise todo()"


def test_blank_replaces_the_expression_and_keeps_a_hint():
    source = HEADER + "def load(p):\n    m = Auto.from_pretrained(p)  # BLANK: Auto -- which class?\n    return m\n"
    learner, [exercise] = transform(source)
    assert "    m = ___.from_pretrained(p)  # TODO: fill in ___ — which class?" in learner
    assert (exercise.kind, exercise.function, exercise.solution) == ("blank", "load", ["m = Auto.from_pretrained(p)"])
    ast.parse(learner)  # a blank still parses


def test_two_blanks_on_one_line():
    learner, _ = transform(HEADER + "x = a(1) + b(2)  # BLANK: a | b\n")
    assert learner.splitlines()[-1].startswith("x = ___(1) + ___(2)")


@pytest.mark.parametrize("body, problem", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "nested"),
    ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n### END SOLUTION\n", "without a"),
    ("### HINT: lonely\n", "outside a solution region"),
    ("### BEGIN SOLUTION\n### END SOLUTION\n", "empty solution"),
    ("### BEGIN SOLUTION\nx = 1\n### HINT: late\n### END SOLUTION\n", "after the solution's code"),
    ("x = f(1)  # BLANK: g\n", "must appear exactly once"),
    ("### BEGIN SOLUTION\nx = f(1)  # BLANK: f\n### END SOLUTION\n", "BLANK inside"),
])
def test_bad_markers_are_errors_with_a_line(body, problem):
    with pytest.raises(MarkerError, match=problem) as caught:
        transform(HEADER + body, filename="ref.py")
    assert str(caught.value).startswith("ref.py:")


def test_exercises_need_the_todo_import():
    with pytest.raises(MarkerError, match="must import"):
        transform("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n")


def test_committed_learner_files_are_what_the_generator_makes():
    assert main(["--check"]) == 0, "a learner file is out of date: run python -m lessons generate --force"


def test_every_stage_has_a_reference_and_its_learner_file_imports():
    assert [f.stem for f in reference_files()] == [s.module for s in STAGES]
    for stage in STAGES:
        learner, exercises = generate(stage.reference_file)
        assert exercises, f"{stage.module} has nothing for the learner to do"
        assert stage.learner_file.read_text() == learner
        compile(learner, str(stage.learner_file), "exec")
        assert exercises_for(stage.module) == exercises


def test_generate_never_overwrites_a_learners_work(tmp_path, monkeypatch, capsys):
    import lessons.engine.blanks as blanks

    reference = tmp_path / "reference" / "stage9_demo.py"
    reference.parent.mkdir()
    reference.write_text(HEADER + "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n")
    monkeypatch.setattr(blanks, "REFERENCE_DIR", reference.parent)
    monkeypatch.setattr(blanks, "LESSONS_DIR", tmp_path)
    learner = tmp_path / "stage9_demo.py"
    learner.write_text("def f():\n    return 1  # my own work\n")
    assert main([]) == 0
    assert "my own work" in learner.read_text() and "skipped" in capsys.readouterr().out
    assert main(["--check"]) == 1
    assert main(["--force"]) == 0 and "raise todo()" in learner.read_text()


def test_a_todo_names_what_the_code_after_it_needs():
    source = HEADER + (
        "def wrap(model, config):\n"
        "    \"\"\"Wrap it.\"\"\"\n"
        "    before = config\n"
        "    ### BEGIN SOLUTION\n"
        "    ### HINT: Which function wraps?\n"
        "    wrapped = get(model, before)\n"
        "    for step in range(2):\n"
        "        pass\n"
        "    ### END SOLUTION\n"
        "    print(before, model)\n"
        "    return wrapped\n")
    learner, [exercise] = transform(source)
    assert ("    # TODO: Which function wraps?\n"
            "    #       The lines after this TODO use `wrapped`: your code must set it.\n"
            "    raise todo()\n    print(before, model)\n    return wrapped\n") in learner
    assert '    """Wrap it."""\n    before = config\n' in learner, "the signature, docstring and given code stay"
    assert exercise.hints == ["Which function wraps?"], "the line is the generator's, not a hint tier"
    assert learner.splitlines()[exercise.learner_line - 1].strip() == "raise todo()"
    # nothing to name: the code after reads only parameters and what came before the region
    learner, _ = transform(HEADER + "def f(x):\n    ### BEGIN SOLUTION\n    y = x\n    ### END SOLUTION\n    return x\n")
    assert "use `" not in learner


def unexplained_names(learner: str) -> list[str]:
    """``line: name`` for each name read after a ``raise todo()`` that nothing in its function (the region is
    gone), the module or the builtins sets, and that the TODO comment above it does not name."""
    import builtins

    tree, lines = ast.parse(learner), learner.splitlines()
    module_names = {name for node in tree.body for _, name in blanks._stored_names(node)}
    module_names |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
                     and node.col_offset == 0}
    found = []
    for function in (node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for raised in (node for node in ast.walk(function) if isinstance(node, ast.Raise)
                       and ast.unparse(node) == "raise todo()"):
            line = raised.lineno
            known = set(dir(builtins)) | module_names | {a.arg for a in function.args.args + function.args.kwonlyargs}
            known |= {name for node in ast.walk(function) for _, name in blanks._stored_names(node)}
            comment = []
            for above in reversed(lines[:line - 1]):
                if not above.strip().startswith("#"):
                    break
                comment.append(above)
            read = [node.id for node in ast.walk(function) if isinstance(node, ast.Name)
                    and isinstance(node.ctx, ast.Load) and node.lineno > line]
            found += [f"{line}: {name}" for name in read if name not in known and f"`{name}`" not in "".join(comment)]
    return found


def test_every_learner_todo_names_what_its_following_code_needs():
    """No learner file leaves code after a TODO that reads a name the learner was never told to create."""
    for stage in STAGES:
        assert not unexplained_names(stage.learner_file.read_text()), stage.learner_file.name
    bare = "from lessons.engine.todo import todo\ndef f(model):\n    # TODO: wrap it\n    raise todo()\n    return wrapped\n"
    assert unexplained_names(bare) == ["4: wrapped"], "the test itself sees the mistake"


def test_a_reference_that_is_not_python_is_an_error_with_its_line():
    with pytest.raises(MarkerError, match=r"ref\.py:2: the reference is not valid Python"):
        transform(HEADER.rstrip() + "\ndef f(:\n", filename="ref.py")


def test_the_generators_doctests_pass():
    """blanks.py's examples run as written (the other engine modules' examples need models and files)."""
    import doctest

    result = doctest.testmod(blanks)
    assert result.attempted >= 3 and result.failed == 0
