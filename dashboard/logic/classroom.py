"""The instructor's view of a class: every learner's store, read-only, never their code.

In a class, each learner works with ``LAB_CLASS_DIR`` set to a shared folder
and their own ``LAB_LEARNER`` name, so their store is
``$LAB_CLASS_DIR/<learner>/lab.sqlite``. The Class page reads all of them
read-only; a learner's file on their own machine is never hashed or run here,
so a stage counts as passed when the learner's newest complete check run passed.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from lessons.engine.progress import run_passes_stage
from lessons.engine.stages import STAGES
from lessons.engine.store import Store

SETUP_TEXT = """\
A class shares one folder that every learner's lab writes to and the instructor reads.

1. Make a folder everyone can write to, e.g. `/srv/lora-kitchen/class` on the shared server.
2. Each learner starts their lab with it and their own name:
   `LAB_CLASS_DIR=/srv/lora-kitchen/class LAB_LEARNER=ada bash dashboard/start.sh`
   (their store becomes `/srv/lora-kitchen/class/ada/lab.sqlite`).
3. The instructor starts the dashboard with the same `LAB_CLASS_DIR` and opens this page.

The Class page only reads the stores; it never runs a learner's code.
"""


# "demo" holds what the reference solutions made (demo mode, `python -m lessons pipeline --reference`): not a learner.
IGNORED_LEARNERS = {"demo"}


def class_dir() -> Path | None:
    folder = os.environ.get("LAB_CLASS_DIR")
    return Path(folder) if folder else None


def learner_stores(folder: Path) -> list[tuple[str, Path]]:
    """(learner name, store path) for each sub-folder of the class folder holding a ``lab.sqlite``."""
    if not folder.is_dir():
        return []
    return sorted((child.name, child / "lab.sqlite") for child in folder.iterdir()
                  if child.is_dir() and (child / "lab.sqlite").is_file() and child.name not in IGNORED_LEARNERS)


@dataclass
class LearnerSummary:
    learner: str
    stages: dict[str, str] = field(default_factory=dict)      # stage label -> passed | failing | not started
    checks: dict[str, str] = field(default_factory=dict)      # stage label -> "5/7"
    runs: list[dict] = field(default_factory=list)            # training runs, each with its metrics
    perplexities: list[dict] = field(default_factory=list)    # evaluations named *perplexity*
    answers: int = 0
    error: str = ""

    @property
    def passed_count(self) -> int:
        return sum(status == "passed" for status in self.stages.values())


def read_learner(name: str, path: Path) -> LearnerSummary:
    """One learner's progress, runs and perplexities, read-only; a store that cannot be read says why."""
    summary = LearnerSummary(name)
    try:
        store = Store(path, read_only=True, learner=name)
    except Exception as error:  # noqa: BLE001 - one unreadable store must not hide the class
        summary.error = f"cannot open {path}: {error}"
        return summary
    try:
        for stage in STAGES:
            run = store.latest_check_run(stage.key, complete_only=True) or store.latest_check_run(stage.key)
            if run is None:
                summary.stages[stage.label], summary.checks[stage.label] = "not started", "–"
                continue
            summary.stages[stage.label] = "passed" if run_passes_stage(run) else "failing"
            summary.checks[stage.label] = f"{run['passed']}/{run['total']}"
        for run in store.runs("train"):
            run["metrics"] = store.metrics(run["id"])
            summary.runs.append(run)
        summary.perplexities = [e for e in store.evaluations() if "perplexity" in e["name"].lower()]
        summary.answers = sum(bool(text.strip()) for text in store.answers().values())
    except Exception as error:  # noqa: BLE001
        summary.error = f"cannot read {path}: {error}"
    finally:
        store.close()
    return summary


def read_class(folder: Path, *, viewer: str | None = None) -> list[LearnerSummary]:
    """Every learner's summary. ``viewer`` (the instructor's own name) is left out while their store is empty:
    opening the dashboard creates it, and an instructor is not a learner who has not started."""
    summaries = [read_learner(name, path) for name, path in learner_stores(folder)]
    return [s for s in summaries if not (s.learner == viewer and not s.runs and not s.answers
                                         and all(v == "not started" for v in s.stages.values()))]


def progress_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """One row per learner: each stage's checks passed, runs, answers."""
    rows = []
    for summary in summaries:
        row = {"learner": summary.learner, "stages passed": summary.passed_count}
        for stage in STAGES:
            status = summary.stages.get(stage.label, "?")
            mark = {"passed": "✅", "failing": "❌", "not started": "·"}.get(status, "?")
            row[stage.label] = f"{mark} {summary.checks.get(stage.label, '')}".strip()
        row["runs"] = len(summary.runs)
        row["answers"] = summary.answers
        if summary.error:
            row["problem"] = summary.error
        rows.append(row)
    return rows


def loss_rows(summaries: list[LearnerSummary], *, split: str = "train") -> list[dict]:
    """Every learner's loss curves, one point per logged step (``split``: train or validation)."""
    rows = []
    for summary in summaries:
        for number, run in enumerate(summary.runs, start=1):
            for metric in run["metrics"]:
                metric_split = "validation" if metric["split"] in ("eval", "validation") else metric["split"]
                if metric_split == split and metric.get("loss") is not None and math.isfinite(metric["loss"]):
                    rows.append({"learner": summary.learner, "run": f"{summary.learner} #{number}",
                                 "step": metric["step"], "loss": metric["loss"], "split": metric_split})
    return rows


def perplexity_rows(summaries: list[LearnerSummary]) -> list[dict]:
    """Every learner's recorded perplexities (before and after fine-tuning)."""
    rows = []
    for summary in summaries:
        for evaluation in summary.perplexities:
            if evaluation["value"] is None:
                continue
            rows.append({"learner": summary.learner, "measure": evaluation["name"],
                         "perplexity": float(evaluation["value"])})
    return rows
