"""A stage page's facts: its lesson text, check status, lock, hints and the checks command.

Plain functions on the store and the files, no Streamlit: the pages draw what
these return, and the tests call them directly.
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

from lessons.engine.blanks import Exercise, exercises_for, hints_file
from lessons.engine.paths import PROJECT_ROOT, relative_to_project
from lessons.engine.progress import CHANGED, FAILING, NOT_STARTED, PASSED, StageProgress, stage_progress
from lessons.engine.stages import STAGES, Stage
from lessons.engine.store import Store

CHECK_TIMEOUT_S = 300  # a whole stage's checks take well under a minute; this only stops a hang


# -- the lesson text ---------------------------------------------------------------
@dataclass
class LessonText:
    source: str = field(default="", metadata={"help": "'reference', 'learner' or '' when neither file exists"})
    path: str = field(default="", metadata={"help": "the file it was read from, relative to the project"})
    markdown: str = field(default="", metadata={"help": "the module docstring, as Markdown"})


LIST_ITEM = re.compile(r"^\s*(?:\d+\.|[-*])\s+")


def docstring_markdown(text: str) -> str:
    """A module docstring (reStructuredText habits) as Markdown: ``code`` → `code`, ``::`` blocks fenced.

    A literal block is every line after ``::`` indented deeper than the line that
    introduced it (blank lines included); it ends at the first line that is not.
    Its fence is indented as the text that introduced it, so a block inside
    ``3. …`` stays inside item 3 and the list goes on numbering 4, 5 after it.
    """
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    out: list[str] = []
    block: list[str] | None = None
    block_indent = 0

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def close() -> None:
        lines = block or []
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        cut = min((indent(line) for line in lines if line.strip()), default=0)
        margin = " " * block_indent  # the list item's text starts there: the block belongs to the item
        out.extend(["", margin + "```"])
        out.extend((margin + line[cut:]) if line.strip() else "" for line in lines)
        out.extend([margin + "```", ""])

    for line in text.splitlines():
        if block is not None:
            if not line.strip() or indent(line) > block_indent:
                block.append(line)
                continue
            close()
            block = None
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1])
            item = LIST_ITEM.match(line)  # in a list item, the text (and so the block) starts after "3. "
            block, block_indent = [], item.end() if item else indent(line)
            continue
        out.append(line)
    if block is not None:
        close()
    return "\n".join(out).strip()


def lesson_text(stage: Stage) -> LessonText:
    """The stage's lesson, in the project's own words: the module docstring of its file.

    Read with ``ast`` (never imported: a half-finished learner file must not
    run just to show its lesson). The reference file first; the learner file
    when the reference was withheld.
    """
    for source, path in (("reference", stage.reference_file), ("learner", stage.learner_file)):
        if not path.exists():
            continue
        try:
            docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except SyntaxError:
            continue  # a learner file with a typo still has a lesson: try the next one
        if docstring:
            return LessonText(source, relative_to_project(path), docstring_markdown(docstring))
    return LessonText()


# -- check status ----------------------------------------------------------------------
OUTCOME_LABELS = {
    "passed": "passed", "failed": "failing", "error": "error", "todo": "todo", "skipped": "skipped",
}
OUTCOME_ICONS = {"passed": "✅", "failing": "❌", "error": "💥", "todo": "📝", "skipped": "⏭️",
                 "not started": "⚪"}


@dataclass
class CheckRow:
    name: str
    title: str
    status: str          # not started | failing | error | passed | todo | skipped
    headline: str        # the learner's own message, first
    details: str = ""    # the rest (a traceback), folded away

    @property
    def icon(self) -> str:
        return OUTCOME_ICONS.get(self.status, "•")


def split_message(message: str) -> tuple[str, str]:
    """A check's message as (what to read first, what to fold away).

    A teacher's message (a few lines: problem, expected, got, hint, open) is
    read whole; a raw traceback shows its last line first and folds the rest.
    """
    message = (message or "").strip()
    if not message:
        return "", ""
    lines = message.splitlines()
    looks_raw = "Traceback (most recent call last)" in message or len(lines) > 12 or any(
        line.startswith(("E   ", ">   ")) for line in lines)
    if not looks_raw:
        return message, ""
    errors = [line[1:].strip() for line in lines if line.startswith("E ")]
    headline = errors[-1] if errors else next((line for line in reversed(lines) if line.strip()), "")
    return headline.strip(), message


def check_rows(run: dict | None) -> list[CheckRow]:
    """One row per check of the newest run, or [] before any run."""
    if not run:
        return []
    rows = []
    for result in run.get("results", []):
        headline, details = split_message(result.get("message", ""))
        status = OUTCOME_LABELS.get(result["outcome"], result["outcome"])
        rows.append(CheckRow(result["check_name"], result.get("title") or result["check_name"], status,
                             headline, details))
    return rows


def declared_checks(stage: Stage) -> list[tuple[str, str]]:
    """The checks a stage has, as (name, one-line title), read from ``checks/<stage>/test_*.py`` with ``ast``."""
    found = []
    for path in sorted(stage.checks_dir.glob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                doc = ast.get_docstring(node) or node.name
                found.append((node.name, doc.strip().splitlines()[0]))
    return found


def status_summary(progress: StageProgress) -> str:
    """One sentence for the top of a stage page."""
    if progress.status == NOT_STARTED:
        return f"Not started: no checks have run yet. Open {relative_to_project(progress.stage.learner_file)}."
    if progress.status == PASSED:
        return f"Passed: all {progress.total} checks pass on your file as it is now."
    if progress.status == CHANGED:
        return (f"Changed since the last check: your file was edited after the checks ran "
                f"({progress.passed}/{progress.total} passed then). Run the checks again.")
    return f"Failing: {progress.passed} of {progress.total} checks pass."


# -- locks ---------------------------------------------------------------------------------
@dataclass
class Lock:
    """Why a stage page is closed, and what opens it: the first stage not passed yet."""

    unfinished: Stage
    status: str
    failing: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return self.unfinished.check_command

    @property
    def message(self) -> str:
        what = {NOT_STARTED: "has not been checked yet", CHANGED: "changed since its checks last passed",
                FAILING: "has checks still failing"}.get(self.status, self.status)
        return (f"Finish stage {self.unfinished.label} first: stage {self.unfinished.label} "
                f"({self.unfinished.title}) {what}.")


def previous_stage(stage: Stage) -> Stage | None:
    index = STAGES.index(stage)
    return STAGES[index - 1] if index else None


def lock_for(store: Store, stage: Stage, *, demo: bool) -> Lock | None:
    """None when the page is open: stage 1, demo mode, or the previous stage passed.

    A closed page names the first stage before it that has not passed (stage 2 for a
    learner on the stage 4A page who passed only stage 1), since that is the one to do next.
    """
    previous = previous_stage(stage)
    if demo or previous is None or stage_progress(store, previous).unlocked_next:
        return None
    for earlier in STAGES[:STAGES.index(stage)]:
        progress = stage_progress(store, earlier)
        if not progress.unlocked_next:
            failing = [row.title for row in check_rows(progress.last_run) if row.status != "passed"]
            return Lock(earlier, progress.status, failing)
    return None  # unreachable: the previous stage is among them


# -- what to do next --------------------------------------------------------------------------
@dataclass
class NextStep:
    stage: Stage | None
    file: str = ""
    command: str = ""
    text: str = ""


def next_step(progress: list[StageProgress]) -> NextStep:
    """The first stage not passed yet: the file to open and the command to run."""
    for item in progress:
        if item.status != PASSED:
            file = relative_to_project(item.stage.learner_file)
            verb = {NOT_STARTED: "Start", CHANGED: "Re-check", FAILING: "Finish"}.get(item.status, "Work on")
            return NextStep(item.stage, file, item.stage.check_command,
                            f"{verb} stage {item.stage.label}: {item.stage.title}.")
    return NextStep(None, text="Every stage passes. Try the excellent and exceptional tiers below.")


# -- running the checks from the page ----------------------------------------------------------------
@dataclass
class CheckCommandResult:
    command: str
    returncode: int | None
    output: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_checks(stage: Stage, *, timeout: float = CHECK_TIMEOUT_S, extra_args: list[str] | None = None
               ) -> CheckCommandResult:
    """``python -m pytest checks/<stage>`` in a separate process (learner code never runs in the page).

    The checks record their results in the lab's store themselves; the page then reads the store.
    """
    command = [sys.executable, "-m", "pytest", f"checks/{stage.key}", "-q", "--no-header",
               "-p", "no:cacheprovider", *(extra_args or [])]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    shown = stage.check_command + (" " + " ".join(extra_args) if extra_args else "")
    try:
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"")
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
        return CheckCommandResult(shown, None, output + f"\n(stopped after {timeout:.0f} s)", timed_out=True)
    return CheckCommandResult(shown, done.returncode, (done.stdout + done.stderr).strip())


# -- hints ----------------------------------------------------------------------------------------------
LEVELS = ("hint", "partial", "solution")


@dataclass
class HintExercise:
    key: str                 # stable id for the store: "function#n"
    exercise: Exercise

    @property
    def label(self) -> str:
        kind = "blank" if self.exercise.kind == "blank" else "TODO"
        return f"{self.exercise.function}: {kind} at line {self.exercise.learner_line}"

    def levels(self) -> list[str]:
        """The reveals this exercise has, in order (a blank has no partial; a handout has no full solution)."""
        available = []
        if self.exercise.hints:
            available.append("hint")
        if self.exercise.partial:
            available.append("partial")
        if self.exercise.solution:
            available.append("solution")
        return available

    def text(self, level: str) -> str:
        if level == "hint":
            return "\n".join(f"- {hint}" for hint in self.exercise.hints)
        if level == "partial":
            return "\n".join(self.exercise.partial)
        return "\n".join(_dedent(self.exercise.solution))


def _dedent(lines: list[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:] for line in lines]


def hint_exercises(stage: Stage) -> list[HintExercise]:
    """The stage's exercises with stable keys; [] when the reference was withheld."""
    counts: dict[str, int] = {}
    out = []
    for exercise in exercises_for(stage.module):
        counts[exercise.function] = counts.get(exercise.function, 0) + 1
        out.append(HintExercise(f"{exercise.function}#{counts[exercise.function]}", exercise))
    return out


def revealed_levels(store: Store, stage: Stage) -> dict[str, int]:
    """How far each exercise was revealed (0 none, 1 hint, 2 partial, 3 solution), from the store."""
    revealed: dict[str, int] = {}
    for row in store.reveals(stage.key):
        level = LEVELS.index(row["level"]) + 1 if row["level"] in LEVELS else 0
        revealed[row["exercise"]] = max(revealed.get(row["exercise"], 0), level)
    return revealed


def reference_available(stage: Stage) -> bool:
    return stage.reference_file.exists()


def handout_hints_available(stage: Stage) -> bool:
    """A handout's hints and partial solutions for this stage (its full solutions withheld)."""
    return hints_file(stage.module).exists()
