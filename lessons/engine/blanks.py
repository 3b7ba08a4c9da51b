"""Make the learner files from the reference solutions: one source of truth.

A reference solution (``lessons/reference/stageN_*.py``) is ordinary, working
Python with the learner's parts marked. Two kinds of mark:

A TODO region, a whole piece the learner writes::

    def is_valid_recipe(example):
        ### BEGIN SOLUTION
        ### HINT: How many ingredients make a recipe worth learning from?
        ### PARTIAL: ingredients = as_list(example["ingredients"])
        ingredients = as_list(example["ingredients"])
        return len(ingredients) >= MIN_INGREDIENTS
        ### END SOLUTION

becomes, in the learner file (``lessons/stage2_data.py``)::

    def is_valid_recipe(example):
        # TODO: How many ingredients make a recipe worth learning from?
        raise todo()

The function's signature and docstring stay, and so does the code after the
region. Where that code reads a name only the region's code sets
(``return lora_model`` after a region that makes ``lora_model``), the TODO
says so: the learner is never left to guess a name.

A blank, one expression inside a line the learner completes, marked by a
comment at the end of the line (an optional hint after ``--``)::

    model = AutoModelForCausalLM.from_pretrained(source)  # BLANK: AutoModelForCausalLM -- which Auto class predicts the next token?

becomes::

    model = ___.from_pretrained(source)  # TODO: fill in ___ — which Auto class predicts the next token?

``HINT`` lines are the learner's first help; ``PARTIAL`` lines are a second,
stronger help the dashboard reveals on request; the full solution comes last.
A nested or unterminated region, a stray END, a hint outside a region or a
blank whose expression is not on its line is an error (``MarkerError``) with
the file and line, never a silently wrong learner file.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .paths import LESSONS_DIR, REFERENCE_DIR

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT:"
PARTIAL = "### PARTIAL:"
BLANK_RE = re.compile(r"\s+# BLANK: (?P<spec>.+?)\s*$")
DEF_RE = re.compile(r"^(?P<indent>\s*)(?:async\s+)?def\s+(?P<name>\w+)")
TODO_IMPORT = "from lessons.engine.todo import ___, todo"


class MarkerError(ValueError):
    """A reference file whose markers cannot be turned into a learner file."""

    def __init__(self, filename: str, line: int, problem: str):
        self.filename, self.line = filename, line
        super().__init__(f"{filename}:{line}: {problem}")


@dataclass
class Exercise:
    """One thing the learner writes: a TODO region or a blank."""

    function: str = field(metadata={"help": "the function it belongs to"})
    kind: str = field(metadata={"help": "'todo' (a region) or 'blank' (inside one line)"})
    reference_line: int = field(metadata={"help": "1-based line of the marker in the reference"})
    learner_line: int = field(metadata={"help": "1-based line of the TODO in the learner file"})
    hints: list[str] = field(default_factory=list, metadata={"help": "Socratic hints, shown first"})
    partial: list[str] = field(default_factory=list, metadata={"help": "a partial solution, shown second"})
    solution: list[str] = field(default_factory=list, metadata={"help": "the full solution, shown last"})


def _enclosing_function(lines: list[str], index: int) -> str:
    indent = len(lines[index]) - len(lines[index].lstrip())
    for j in range(index, -1, -1):
        match = DEF_RE.match(lines[j])
        if match and len(match.group("indent")) < max(indent, 1):
            return match.group("name")
    return "<module>"


def _stored_names(node: ast.AST) -> list[tuple[int, str]]:
    """``(line, name)`` of every name ``node`` binds: assignments, loop and ``with`` targets, defs, imports."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return [(node.lineno, node.id)]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.lineno, node.name)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(node.lineno, (alias.asname or alias.name).split(".")[0]) for alias in node.names]
    return []


def names_set_only_inside(tree: ast.Module, begin: int, end: int) -> list[str]:
    """The names the code after a region (``begin``..``end``, its marker lines) reads that only the region sets.

    Looked for in the function that holds the region (the module for a region outside any function): a
    name the function's parameters or its code before the region already set does not count.

    >>> names_set_only_inside(ast.parse("def f(x):\\n    #\\n    y = x\\n    #\\n    return x, y\\n"), 2, 4)
    ['y']
    """
    scope: ast.AST = tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno < begin <= node.end_lineno:
            if scope is tree or node.lineno > scope.lineno:
                scope = node  # the innermost function around the region
    before: set[str] = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
        arguments = scope.args
        before |= {a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs}
        before |= {a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None}
    inside: set[str] = set()
    read_after: list[tuple[int, int, str]] = []
    for node in ast.walk(scope):
        if node is scope:
            continue
        for line, name in _stored_names(node):
            if line < begin:
                before.add(name)
            elif line < end:
                inside.add(name)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.lineno > end:
            read_after.append((node.lineno, node.col_offset, node.id))
    needed: list[str] = []
    for _, _, name in sorted(read_after):
        if name in inside and name not in before and name not in needed:
            needed.append(name)
    return needed


def _names_line(names: list[str]) -> str:
    quoted = [f"`{name}`" for name in names]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]
    return f"The lines after this TODO use {listed}: your code must set {'it' if len(names) == 1 else 'them'}."


def transform(source: str, filename: str = "<reference>") -> tuple[str, list[Exercise]]:
    """The learner version of a reference source, and the exercises in it.

    >>> learner, exercises = transform(TODO_IMPORT + "\\ndef f():\\n    ### BEGIN SOLUTION\\n    return 1\\n"
    ...                                "    ### END SOLUTION\\n")
    >>> print(learner)
    from lessons.engine.todo import ___, todo
    def f():
        # TODO: write this part (the docstring above says what it must do).
        raise todo()
    <BLANKLINE>
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        raise MarkerError(filename, error.lineno or 1, f"the reference is not valid Python: {error.msg}") from None
    lines = source.splitlines()
    out: list[str] = []
    exercises: list[Exercise] = []
    region: Exercise | None = None
    region_indent = ""
    region_has_code = False

    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if region is not None:
                raise MarkerError(filename, number, f"nested '{BEGIN}': the region opened at line "
                                                    f"{region.reference_line} is not closed yet")
            region = Exercise(_enclosing_function(lines, number - 1), "todo", number, 0)
            region_indent = line[: len(line) - len(line.lstrip())]
            region_has_code = False
            continue
        if stripped.startswith(END):
            if region is None:
                raise MarkerError(filename, number, f"'{END}' without a '{BEGIN}' before it")
            if not region.solution:
                raise MarkerError(filename, number, "an empty solution region")
            hints = region.hints or ["write this part (the docstring above says what it must do)."]
            needed = names_set_only_inside(tree, region.reference_line, number)
            out.append(f"{region_indent}# TODO: {hints[0]}")
            out.extend(f"{region_indent}#       {more}" for more in hints[1:] + ([_names_line(needed)] if needed else []))
            out.append(f"{region_indent}raise todo()")
            region.learner_line = len(out)
            exercises.append(region)
            region = None
            continue
        for marker, bucket in ((HINT, "hints"), (PARTIAL, "partial")):
            if stripped.startswith(marker):
                if region is None:
                    raise MarkerError(filename, number, f"'{marker}' outside a solution region")
                if region_has_code:
                    raise MarkerError(filename, number, f"'{marker}' after the solution's code: put it first")
                getattr(region, bucket).append(stripped[len(marker):].strip())
                break
        else:
            blank = BLANK_RE.search(line)
            if region is not None:
                if blank:
                    raise MarkerError(filename, number, "a BLANK inside a solution region")
                region.solution.append(line)
                region_has_code = region_has_code or bool(stripped)
                continue
            if blank:
                code = line[: blank.start()]
                spec, _, hint = blank.group("spec").partition(" -- ")
                exercise = Exercise(_enclosing_function(lines, number - 1), "blank", number, len(out) + 1,
                                    hints=[hint.strip()] if hint.strip() else [], solution=[code.strip()])
                for expression in (part.strip() for part in spec.split(" | ")):
                    if code.count(expression) != 1:
                        raise MarkerError(filename, number, f"the blank {expression!r} must appear exactly once "
                                                            f"on its line (found {code.count(expression)})")
                    code = code.replace(expression, "___")
                comment = "# TODO: fill in ___" + (f" — {hint.strip()}" if hint.strip() else "")
                out.append(f"{code}  {comment}")
                exercises.append(exercise)
                continue
            out.append(line)

    if region is not None:
        raise MarkerError(filename, region.reference_line, f"'{BEGIN}' is never closed by '{END}'")
    if exercises and TODO_IMPORT not in source:
        raise MarkerError(filename, 1, f"a file with exercises must import them: add '{TODO_IMPORT}'")
    return "\n".join(out) + "\n", exercises


def learner_spans(source: str) -> list[tuple[int, int, int]]:
    """Where a reference's learner code is: ``(line, first column, end column)``, 1-based lines, 0-based columns.

    A TODO region's code lines count whole; a blank counts only its expression.
    The mutation score mutates these spans and nothing else (never the given code).

    >>> learner_spans("x = f(1)  # BLANK: f\\n### BEGIN SOLUTION\\ny = 2\\n### END SOLUTION\\n")
    [(1, 4, 5), (3, 0, 5)]
    """
    spans, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((BEGIN, END)):
            inside = stripped.startswith(BEGIN)
        elif inside and stripped and not stripped.startswith((HINT, PARTIAL, "#")):
            spans.append((number, 0, len(line)))
        elif not inside and (blank := BLANK_RE.search(line)):
            code = line[: blank.start()]
            for expression in (part.strip() for part in blank.group("spec").partition(" -- ")[0].split(" | ")):
                start = code.index(expression)
                spans.append((number, start, start + len(expression)))
    return spans


def reference_files() -> list[Path]:
    """Every reference solution, in stage order."""
    return sorted(REFERENCE_DIR.glob("stage*.py"))


def learner_path(reference: Path) -> Path:
    return LESSONS_DIR / reference.name


def generate(reference: Path) -> tuple[str, list[Exercise]]:
    return transform(reference.read_text(encoding="utf-8"), filename=f"lessons/reference/{reference.name}")


def hints_file(module_name: str) -> Path:
    """Where a handout keeps one stage's hints and partial solutions: ``lessons/hints/stageN_*.json``."""
    return LESSONS_DIR / "hints" / f"{module_name}.json"


def exercises_for(module_name: str) -> list[Exercise]:
    """The exercises of one stage (``"stage2_data"``), for the dashboard's hints.

    From the reference when it is here; in a handout, which has no reference, from its hints file (hints
    and partial solutions, no full solution); [] when neither is there.
    """
    reference = REFERENCE_DIR / f"{module_name}.py"
    if reference.exists():
        return generate(reference)[1]
    hints = hints_file(module_name)
    if hints.exists():
        return [Exercise(**row) for row in json.loads(hints.read_text(encoding="utf-8"))]
    return []


def write_hints(lessons_dir: Path) -> list[Path]:
    """Every stage's exercises without their full solutions, as ``lessons_dir/hints/stageN_*.json`` (the handout)."""
    written = []
    for reference in reference_files():
        rows = [{**asdict(exercise), "solution": []} for exercise in generate(reference)[1]]
        target = lessons_dir / "hints" / f"{reference.stem}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons generate",
                                     description="Write the learner files from the reference solutions.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a learner file differs from what would be generated")
    parser.add_argument("--force", action="store_true",
                        help="overwrite learner files that differ (a learner's edits are lost!)")
    args = parser.parse_args(argv)
    stale = []
    for reference in reference_files():
        text, _ = generate(reference)
        target = learner_path(reference)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target.name)
        if args.check:
            continue
        if current is not None and not args.force:
            # A learner's work is never overwritten by accident.
            print(f"skipped {target.name}: it differs from the reference's learner version "
                  "(a learner's work?); --force overwrites it")
            continue
        target.write_text(text, encoding="utf-8")
        print(f"wrote {target.relative_to(LESSONS_DIR.parent)}")
    if args.check and stale:
        print("out of date: " + ", ".join(stale) + " — run: python -m lessons generate")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
