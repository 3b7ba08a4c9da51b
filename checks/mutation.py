"""The mutation score: how much wrong code the checks catch, measured with Cosmic Ray.

``python -m lessons mutation-score [--stage 2] [--sample 20]`` takes each
stage's reference solution, lets Cosmic Ray (``cosmic-ray`` on PyPI) list every
mutation its operators can make (``<`` for ``<=``, ``+`` for ``-``, ``True``
for ``False``, a loop that runs zero times, a number off by one, …), keeps only
those inside the learner's parts (TODO regions and blanks, as
``lessons.engine.blanks.learner_spans`` finds them; the given code is never
mutated), and runs the stage's checks on each mutant with ``--lesson-file``.

A mutant is *killed* when a check fails, *timed out* when the checks ran past
the per-mutant limit (a loop that never ends is caught too), *survived* when
every check passed. Mutants that behave exactly like the reference are listed,
each with a one-line reason, in ``checks/equivalent_mutants.toml``; they are
not run. The score is (killed + timed out) / (every mutant run).

Why Cosmic Ray and not mutmut: mutmut 3 runs the tests in-process against a
rewritten copy of the package (``mutants/``) and needs the code under test
imported by module name; our checks load a learner file by path in a separate,
supervised process. Cosmic Ray mutates a file on disk and runs any command, so
it tests the checks exactly as a learner runs them. Its session database (one
per stage, under ``$LAB_HOME/mutation/``) holds every mutant and result, and
``cr-report`` reads it.
"""
from __future__ import annotations

import argparse
import difflib
import random
import shlex
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from lessons.engine.blanks import learner_spans
from lessons.engine.paths import CHECKS_DIR, PROJECT_ROOT, lab_home
from lessons.engine.stages import STAGES, Stage, stage as stage_by_key

EQUIVALENT_FILE = CHECKS_DIR / "equivalent_mutants.toml"
MUTANT_TIMEOUT_S = 180.0   # one mutant's whole check run; the slowest stage takes about 40 s on 2 cores
CHECK_TIMEOUT_S = 30.0     # one check under a mutant: a mutant that loops forever costs this, not a minute


@dataclass
class Mutant:
    job_id: str
    spec: object                # cosmic_ray.work_item.MutationSpec
    line: int
    function: str
    before: str                 # the changed line(s) of the reference ...
    after: str                  # ... and of the mutant

    @property
    def key(self) -> str:
        """How the equivalents file names a mutant: stable while the line itself stays the same."""
        return f"{self.function}: {self.before} -> {self.after}"


@dataclass
class StageScore:
    stage: Stage
    found: int = 0              # mutants in the learner's code
    equivalent: int = 0
    outcomes: dict[str, list[Mutant]] = field(default_factory=lambda: {"killed": [], "survived": [], "timed out": [],
                                                                       "error": []})
    seconds: float = 0.0

    @property
    def run(self) -> int:
        return sum(len(mutants) for mutants in self.outcomes.values())

    @property
    def score(self) -> float | None:
        caught = len(self.outcomes["killed"]) + len(self.outcomes["timed out"])
        counted = caught + len(self.outcomes["survived"])
        return caught / counted if counted else None


def equivalents() -> dict[str, dict[str, str]]:
    """``{stage: {mutant key: reason}}`` from the reviewed file."""
    if not EQUIVALENT_FILE.exists():
        return {}
    found: dict[str, dict[str, str]] = {}
    for entry in tomllib.loads(EQUIVALENT_FILE.read_text()).get("equivalent", []):
        found.setdefault(entry["stage"], {})[entry["mutant"]] = entry["reason"]
    return found


def _changed_lines(original: str, mutated: str) -> tuple[str, str]:
    before, after = [], []
    for line in difflib.ndiff(original.splitlines(), mutated.splitlines()):
        if line.startswith("- "):
            before.append(line[2:].strip())
        elif line.startswith("+ "):
            after.append(line[2:].strip())
    return " / ".join(before), " / ".join(after)


def _inside(start: tuple[int, int], end: tuple[int, int], spans: dict[int, list[tuple[int, int]]]) -> bool:
    """Whether a mutation from ``start`` to ``end`` (line, column) lies wholly in the learner's code."""
    (line, column), (end_line, end_column) = start, end
    if line == end_line:
        return any(first <= column and end_column <= last for first, last in spans.get(line, []))
    return all(any(first == 0 for first, _ in spans.get(number, [])) for number in range(line, end_line + 1))


def learner_mutants(reference: Path, copy: Path, session: Path) -> tuple[list[Mutant], object]:
    """Every Cosmic Ray mutant of ``copy`` (the reference's text) that falls in the learner's code.

    The others are marked skipped in the session, as Cosmic Ray's own filters do.
    """
    from cosmic_ray.commands import init
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator
    from cosmic_ray.work_db import WorkDB
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    source = reference.read_text()
    spans: dict[int, list[tuple[int, int]]] = {}
    for line, start, end in learner_spans(source):
        spans.setdefault(line, []).append((start, end))
    db = WorkDB(str(session), WorkDB.Mode.create)
    init([copy], db, {})
    kept, skipped = [], []
    for item in db.pending_work_items:
        spec = item.mutations[0]
        if not _inside(spec.start_pos, spec.end_pos, spans):
            skipped.append(item.job_id)
            continue
        mutated = mutate_code(source, get_operator(spec.operator_name)(**(spec.operator_args or {})), spec.occurrence)
        if mutated is None or mutated == source:
            skipped.append(item.job_id)
            continue
        before, after = _changed_lines(source, mutated)
        kept.append(Mutant(item.job_id, spec, spec.start_pos[0], spec.definition_name or "?", before, after))
    db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
    # Cosmic Ray hands out its work items in random order (ORDER BY random()): sort them, so --seed picks the
    # same sample every time.
    kept.sort(key=lambda m: (m.spec.start_pos, m.spec.end_pos, m.spec.operator_name, m.spec.occurrence))
    return kept, db


def score_stage(stage: Stage, *, sample: int | None, seed: int, log=print) -> StageScore:
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    result = StageScore(stage)
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix=f"mutants-{stage.key}-"))
    copy = folder / stage.reference_file.name
    shutil.copy(stage.reference_file, copy)
    sessions = lab_home() / "mutation"
    sessions.mkdir(parents=True, exist_ok=True)
    session = sessions / f"{stage.key}.sqlite"
    session.unlink(missing_ok=True)
    mutants, db = learner_mutants(stage.reference_file, copy, session)
    try:
        result.found = len(mutants)
        known = equivalents().get(stage.key, {})
        equivalent = [m for m in mutants if m.key in known]
        result.equivalent = len(equivalent)
        db.set_multiple_results([m.job_id for m in equivalent], WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                                           output="marked equivalent"))
        to_run = [m for m in mutants if m.key not in known]
        if sample is not None and sample < len(to_run):
            to_run = sorted(random.Random(seed).sample(to_run, sample), key=lambda m: m.line)
        command = " ".join(shlex.quote(part) for part in [
            sys.executable, "-m", "pytest", str(stage.checks_dir), "-x", "-q", "-p", "no:cacheprovider",
            "--no-record", f"--lesson-file={copy}", f"--check-timeout={CHECK_TIMEOUT_S:g}"])
        for number, mutant in enumerate(to_run, start=1):
            outcome = mutate_and_test([mutant.spec], command, MUTANT_TIMEOUT_S)
            if outcome.worker_outcome != WorkerOutcome.NORMAL:
                kind = "error"
            elif outcome.test_outcome == TestOutcome.SURVIVED:
                kind = "survived"
            elif outcome.output == "timeout" or "ran longer than" in (outcome.output or ""):
                kind = "timed out"
            else:
                kind = "killed"
            result.outcomes[kind].append(mutant)
            db.set_result(mutant.job_id, outcome)
            log(f"  {stage.key} {number}/{len(to_run)} line {mutant.line} {kind:9} {mutant.key[:110]}")
    finally:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
    result.seconds = time.perf_counter() - started
    return result


def table(scores: list[StageScore]) -> str:
    rows = [("stage", "in learner code", "equivalent", "run", "killed", "timed out", "survived", "error", "score",
             "seconds")]
    for s in scores:
        rows.append((s.stage.label, str(s.found), str(s.equivalent), str(s.run), str(len(s.outcomes["killed"])),
                     str(len(s.outcomes["timed out"])), str(len(s.outcomes["survived"])),
                     str(len(s.outcomes["error"])), "-" if s.score is None else f"{s.score:.0%}", f"{s.seconds:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons mutation-score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", action="append", help="a stage (2, 4a, stage3…); repeat for more; default all")
    parser.add_argument("--sample", type=int, default=None, help="run this many random mutants per stage (default all)")
    parser.add_argument("--seed", type=int, default=0, help="which random sample (default 0)")
    args = parser.parse_args(argv)
    stages = [stage_by_key(key) for key in args.stage] if args.stage else STAGES
    scores = []
    for stage in stages:
        print(f"{stage.key}: mutating the learner's code of {stage.reference_file.relative_to(PROJECT_ROOT)}",
              flush=True)
        scores.append(score_stage(stage, sample=args.sample, seed=args.seed,
                                  log=lambda line: print(line, flush=True)))
    print("\n" + table(scores))
    for s in scores:
        for kind in ("survived", "error"):
            for mutant in s.outcomes[kind]:
                print(f"{kind}: {s.stage.key} line {mutant.line}: {mutant.key}")
    return 0
