"""A learner's progress: which stages passed, on the file as it is now."""
from __future__ import annotations

from dataclasses import dataclass

from .registry import stage_checks
from .stages import STAGES, Stage, file_hash
from .store import Store

NOT_STARTED, FAILING, PASSED, CHANGED = "not started", "failing", "passed", "changed since last check"


@dataclass
class StageProgress:
    stage: Stage
    status: str = NOT_STARTED
    passed: int = 0
    total: int = 0
    last_run: dict | None = None

    @property
    def unlocked_next(self) -> bool:
        """Stage N+1 opens when every check of stage N passed on the file as it is now."""
        return self.status == PASSED


def run_passes_stage(run: dict) -> bool:
    """Every check in the stage's registry passed in this one run.

    What the run happened to collect does not matter: a run of one test file, of
    ``-k`` or of a single node id leaves registry checks without an outcome, so it
    never passes the stage, whatever its ``complete`` flag says.
    """
    names = stage_checks(run["stage"])
    outcomes = {result["check_name"]: result["outcome"] for result in run.get("results", [])}
    return bool(names) and bool(run["complete"]) and all(outcomes.get(name) == "passed" for name in names)


def stage_progress(store: Store, stage: Stage) -> StageProgress:
    """The status of one stage from the newest complete check run and the file's current hash.

    A run that was cut short (``-k``, ``-x``, one test file) never counts as passing a stage.
    """
    run = store.latest_check_run(stage.key, complete_only=True) or store.latest_check_run(stage.key)
    if run is None:
        return StageProgress(stage)
    progress = StageProgress(stage, FAILING, run["passed"], run["total"], run)
    if run["file_hash"] != file_hash(stage.learner_file):
        progress.status = CHANGED
    elif run_passes_stage(run):
        progress.status = PASSED
    return progress


def all_progress(store: Store) -> list[StageProgress]:
    return [stage_progress(store, stage) for stage in STAGES]


def progress_table(store: Store) -> str:
    """The table ``python -m lessons progress`` prints."""
    rows = [("stage", "status", "checks", "next step")]
    for item in all_progress(store):
        checks = f"{item.passed}/{item.total}" if item.total else "-"
        step = "" if item.status == PASSED else f"open lessons/{item.stage.module}.py, then {item.stage.check_command}"
        rows.append((f"{item.stage.label:>2}  {item.stage.module}", item.status, checks, step))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
