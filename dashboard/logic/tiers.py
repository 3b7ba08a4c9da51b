"""The assignment's success tiers, and which criteria the learner's own evidence meets.

The tiers build on each other: *complete* is the whole pipeline working on
your own code; *proficient* adds understanding (answers, evaluation);
*excellent* adds experiments (runs that differ in one setting); *exceptional*
takes it to your own data. Each criterion is one row of ``CRITERIA``, a data
table: the Home page draws it, ``evaluate`` judges it from the store, and the
tests check both. Runs made in demo mode (with the reference solutions) never
count: the evidence must be the learner's own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lessons.engine.progress import PASSED, all_progress
from lessons.engine.stages import STAGES, stage as find_stage
from lessons.engine.store import Store

from .questions import QUESTIONS

TIERS = ("complete", "proficient", "excellent", "exceptional")
TIER_BLURBS = {
    "complete": "The whole pipeline runs on your own code, and the model was fine-tuned once.",
    "proficient": "You can explain what you saw: answers written, before and after measured.",
    "excellent": "You experimented: runs that differ in epochs, LoRA rank and data size.",
    "exceptional": "You took it to your own data, and compared it with the recipe model.",
}
# The settings whose effect the excellent tier asks the learner to try (a TrainSettings field each).
EXPERIMENT_SETTINGS = {"epochs": "epochs", "rank": "LoRA rank", "alpha": "LoRA alpha", "n_recipes": "data size"}
CORE_STAGES = ["stage1", "stage2", "stage3", "stage4a", "stage4b", "stage5"]
ALL_STAGES = [stage.key for stage in STAGES]
# Where a training run's data came from when it was the recipes (anything else is the learner's own data).
RECIPE_SOURCES = {"", "wikibooks", "wikibooks-en", "recipes", "recipenlg", "embedded", None}


@dataclass(frozen=True)
class Criterion:
    tier: str = field(metadata={"help": "one of TIERS"})
    key: str = field(metadata={"help": "stable id"})
    text: str = field(metadata={"help": "what the learner must have done, in words"})
    rule: str = field(metadata={"help": "the name of the rule in RULES that judges it"})
    args: dict = field(default_factory=dict, metadata={"help": "the rule's arguments"})


CRITERIA: list[Criterion] = [
    # complete
    Criterion("complete", "core-checks", "Checks of stages 1–5 (4A and 4B included) pass on your files",
              "stages_passed", {"stages": CORE_STAGES}),
    Criterion("complete", "before-picture", "The base model's 'before' generations are saved (stage 1)",
              "generation_saved", {"stage": "stage1", "label": "before"}),
    Criterion("complete", "one-run", "One LoRA training run of your own code finished",
              "runs_finished", {"count": 1}),
    # proficient
    Criterion("proficient", "sampling-checks", "Stage 6 (sampling) checks pass as well",
              "stages_passed", {"stages": ["stage6"]}),
    Criterion("proficient", "perplexity", "Perplexity measured before and after fine-tuning (stage 5)",
              "evaluations", {"stage": "stage5", "contains": "perplexity", "count": 2}),
    Criterion("proficient", "core-answers", "Every analysis question of stages 1–5 answered",
              "answers", {"stages": CORE_STAGES}),
    # excellent
    Criterion("excellent", "three-runs", "Three or more finished training runs of your own code",
              "runs_finished", {"count": 3}),
    Criterion("excellent", "vary-epochs", "Runs that differ in the number of epochs",
              "runs_vary", {"setting": "epochs"}),
    Criterion("excellent", "vary-rank", "Runs that differ in LoRA rank or alpha",
              "runs_vary", {"setting": "rank", "also": ["alpha"]}),
    Criterion("excellent", "vary-data", "Runs that differ in data size (number of recipes)",
              "runs_vary", {"setting": "n_recipes"}),
    # exceptional
    Criterion("exceptional", "all-checks", "Checks of all eight stages pass, stage 7 included",
              "stages_passed", {"stages": ALL_STAGES}),
    Criterion("exceptional", "own-data-run", "A training run on your own dataset finished",
              "own_dataset_run", {}),
    Criterion("exceptional", "all-answers", "Every analysis question of every stage answered",
              "answers", {"stages": ALL_STAGES}),
]


@dataclass
class Evidence:
    """Everything in a learner's store the criteria look at, read once."""

    passed: set[str] = field(default_factory=set)
    runs: list[dict] = field(default_factory=list)          # finished runs of the learner's own code
    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    generations: list[dict] = field(default_factory=list)
    evaluations: list[dict] = field(default_factory=list)

    @classmethod
    def from_store(cls, store: Store) -> "Evidence":
        passed = {item.stage.key for item in all_progress(store) if item.status == PASSED}
        runs = [run for run in store.runs("train")
                if run["status"] == "finished" and not (run["config"] or {}).get("reference")]
        answers = {key: text for key, text in store.answers().items() if text.strip()}
        return cls(passed, runs, answers, store.generations(), store.evaluations())


def _stage_labels(keys: list[str]) -> str:
    return ", ".join(find_stage(key).label for key in keys)


def rule_stages_passed(evidence: Evidence, *, stages: list[str]) -> tuple[bool, str]:
    missing = [key for key in stages if key not in evidence.passed]
    return (not missing, "all pass" if not missing else f"still to pass: stage {_stage_labels(missing)}")


def rule_generation_saved(evidence: Evidence, *, stage: str, label: str) -> tuple[bool, str]:
    found = [g for g in evidence.generations if g["stage"] == stage and g["label"] == label]
    return (bool(found), f"{len(found)} saved" if found else "none saved yet")


def rule_runs_finished(evidence: Evidence, *, count: int) -> tuple[bool, str]:
    return (len(evidence.runs) >= count, f"{len(evidence.runs)} finished")


def experiment_value(run: dict, setting: str) -> Any:
    """The value of ``setting`` that shaped ``run``, or None when it did not.

    Epochs matter only when the run trained its epochs (``max_steps`` unset or ≤ 0: a step limit
    overrides them), and the recipe count only for a run on the recipes (stage 7's runs train on the
    learner's own file); it is the count the run used (``recipes_used``), which is less than the
    count asked for when the source holds fewer: 5,000 and 10,000 asked of 3,129 recipes are one size.
    """
    config = run["config"] or {}
    if setting == "epochs" and int(config.get("max_steps") or -1) > 0:
        return None
    if setting == "n_recipes" and is_own_dataset_run(run):
        return None
    if setting == "n_recipes":
        return recipes_used(run) or config.get(setting)
    return config.get(setting)


def recipes_used(run: dict) -> int | None:
    """How many recipes ``run`` trained and validated on, as it counted them (None before it counted)."""
    summary = run.get("summary") or {}
    if summary.get("n_train") is None or summary.get("n_validation") is None:
        return None
    return int(summary["n_train"]) + int(summary["n_validation"])


def rule_runs_vary(evidence: Evidence, *, setting: str, also: list[str] = ()) -> tuple[bool, str]:
    """Met when finished runs differ in ``setting`` (or in one of ``also``, its companions: alpha beside rank)."""
    found = {}
    for name in (setting, *also):
        found[name] = sorted({str(value) for run in evidence.runs
                              if (value := experiment_value(run, name)) is not None}, key=_natural)
    said = [f"{EXPERIMENT_SETTINGS.get(name, name)}: {', '.join(values)}" for name, values in found.items() if values]
    label = EXPERIMENT_SETTINGS.get(setting, setting)
    return (any(len(values) >= 2 for values in found.values()),
            " · ".join(said) if said else f"no finished runs to compare {label}")


def _natural(text: str) -> tuple:
    """Numbers in numeric order (2 before 16), anything else after them."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def rule_evaluations(evidence: Evidence, *, stage: str, contains: str, count: int) -> tuple[bool, str]:
    found = [e for e in evidence.evaluations if e["stage"] == stage and contains in e["name"].lower()]
    return (len(found) >= count, f"{len(found)} recorded")


def rule_answers(evidence: Evidence, *, stages: list[str]) -> tuple[bool, str]:
    wanted = [(key, question.key) for key in stages for question in QUESTIONS.get(key, [])]
    done = [item for item in wanted if item in evidence.answers]
    return (len(done) == len(wanted), f"{len(done)} of {len(wanted)} answered")


def is_own_dataset_run(run: dict) -> bool:
    """A run trained on the learner's own data (stage 7), not on the recipes."""
    config = run.get("config") or {}
    if config.get("own_dataset") or run.get("name", "").startswith("stage7"):
        return True
    return str(config.get("source", "")).lower() not in {str(s).lower() for s in RECIPE_SOURCES if s is not None}


def rule_own_dataset_run(evidence: Evidence) -> tuple[bool, str]:
    own = [run for run in evidence.runs if is_own_dataset_run(run)]
    return (bool(own), f"{len(own)} finished" if own else "none yet (stage 7)")


RULES = {
    "stages_passed": rule_stages_passed, "generation_saved": rule_generation_saved,
    "runs_finished": rule_runs_finished, "runs_vary": rule_runs_vary, "evaluations": rule_evaluations,
    "answers": rule_answers, "own_dataset_run": rule_own_dataset_run,
}


@dataclass
class Judgement:
    criterion: Criterion
    met: bool
    evidence: str


def evaluate(evidence: Evidence, criteria: list[Criterion] | None = None) -> list[Judgement]:
    """Each criterion judged on the evidence."""
    return [Judgement(c, *RULES[c.rule](evidence, **c.args)) for c in (criteria or CRITERIA)]


def tier_reached(judgements: list[Judgement]) -> str | None:
    """The highest tier whose criteria, and those of every tier below it, are all met."""
    reached = None
    for tier in TIERS:
        if all(j.met for j in judgements if j.criterion.tier == tier):
            reached = tier
        else:
            break
    return reached


def tier_table(judgements: list[Judgement]) -> list[dict[str, Any]]:
    """Rows for the Home page's table."""
    return [{"tier": j.criterion.tier, "criterion": j.criterion.text, "met": "✅" if j.met else "—",
             "your evidence": j.evidence} for j in judgements]
