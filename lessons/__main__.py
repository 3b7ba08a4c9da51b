"""The LoRA Kitchen command line: ``python -m lessons <command>``.

    progress        your table of stages (not started / failing / passed / changed)
    pipeline        run the whole assignment end to end (instructors: --reference --quick)
    generate        write the learner files from the reference solutions
    reset STAGE     start one stage's file again (your version is kept in .lab/backups/)
    repair-store    move a damaged store aside and restore its backup
    mutation-score  how many mutants of the learner's code the checks kill (maintainers; minutes to hours)
    registry        write checks/registry.json, the list of every check each stage has
    handout         a copy of the project for learners, without the reference solutions
    setup-model     convert the embedded model to its fast cache (set-up does it)
    class           a class on a shared server: init, verify, status, report (instructors)
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from .engine.errors import LabError
from .engine.paths import PROJECT_ROOT


def _progress(args) -> int:
    from .engine.progress import progress_table
    from .engine.store import Store

    with Store() as store:
        print(f"LoRA Kitchen progress for {store.learner} (store: {store.path})\n")
        print(progress_table(store))
    return 0


def _setup_model(args) -> int:
    from .engine.assets import ensure_model_cache, wikibooks_file

    wikibooks_file("en")  # fails early, clearly, if the recipes package is missing
    print(f"[setup] model cache: {ensure_model_cache()}")
    return 0


def _reset(args) -> int:
    """One stage's learner file back to pristine; the learner's version is copied aside first."""
    import time

    from .engine.blanks import generate
    from .engine.paths import lab_home, relative_to_project
    from .engine.stages import stage

    try:
        chosen = stage(args.stage)
    except KeyError as error:
        raise LabError(error.args[0]) from None
    target = chosen.learner_file
    if not chosen.reference_file.exists():
        raise LabError(f"the reference of {chosen.key} is not in this copy, so its pristine file cannot be made: "
                       "ask your instructor for a fresh copy of the file.")
    pristine, _ = generate(chosen.reference_file)
    if target.exists() and target.read_text(encoding="utf-8") == pristine:
        print(f"{relative_to_project(target)} is already as it started; nothing to do.")
        return 0
    if target.exists():
        backups = lab_home() / "backups"
        backups.mkdir(parents=True, exist_ok=True)
        kept = backups / f"{target.stem}.{time.strftime('%Y%m%d-%H%M%S')}.py"
        shutil.copy2(target, kept)
        print(f"your version is kept as {kept}")
    target.write_text(pristine, encoding="utf-8")
    print(f"{relative_to_project(target)} is as it started: every TODO and blank is open again.")
    return 0


def _repair_store(args) -> int:
    from .engine.store import default_store_path
    from .engine.store_file import repair

    path = default_store_path()
    print(f"{path}: {repair(path)}.")
    return 0


def _registry(args) -> int:
    from .engine.registry import REGISTRY_FILE, write_registry

    found = write_registry()
    print(f"{REGISTRY_FILE}: " + ", ".join(f"{key} {len(names)}" for key, names in found.items()))
    return 0


def _handout(args) -> int:
    """Copy the project without the full solutions (for instructors who withhold them).

    The reference solutions stay behind; their hints and partial solutions go along as
    ``lessons/hints/*.json``, so the dashboard still reveals those two steps.
    """
    from .engine.blanks import write_hints

    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()):
        raise LabError(f"{out} exists and is not empty: choose another --out, or remove it first.")
    ignore = shutil.ignore_patterns(".git", ".venv", ".lab", "__pycache__", ".pytest_cache", "handout", "reference")
    shutil.copytree(PROJECT_ROOT, out, ignore=ignore, dirs_exist_ok=True)
    write_hints(out / "lessons")
    print(f"handout written to {out} (no lessons/reference/: the dashboard reveals hints and partial solutions, "
          "not the full ones, and `.venv/bin/python -m pytest checks --reference` says the reference is withheld)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("progress", help="your table of stages").set_defaults(run=_progress)
    commands.add_parser("setup-model", help="convert the embedded model once").set_defaults(run=_setup_model)
    reset = commands.add_parser("reset", help="start one stage's file again (your version is kept)")
    reset.add_argument("stage", help="the stage: 1, 2, 3, 4a, 4b, 5, 6 or 7")
    reset.set_defaults(run=_reset)
    commands.add_parser("repair-store", help="move a damaged store aside, restore its backup"
                        ).set_defaults(run=_repair_store)
    commands.add_parser("registry", help="write the registry of checks").set_defaults(run=_registry)
    handout = commands.add_parser("handout", help="a learner copy without the reference solutions")
    handout.add_argument("--out", default="handout", help="folder to write (default: ./handout)")
    handout.set_defaults(run=_handout)
    generate = commands.add_parser("generate", help="write learner files from the reference", add_help=False)
    generate.set_defaults(run=None)
    pipeline = commands.add_parser("pipeline", help="run every stage end to end", add_help=False)
    pipeline.set_defaults(run=None)
    bench = commands.add_parser("bench", help="baseline vs lab training benchmark", add_help=False)
    bench.set_defaults(run=None)
    commands.add_parser("mutation-score", help="the checks' mutation score", add_help=False).set_defaults(run=None)
    commands.add_parser("queue", help="the training queue: who waits, who runs", add_help=False).set_defaults(run=None)
    commands.add_parser("bench-queue", help="what the training queue costs per job", add_help=False
                        ).set_defaults(run=None)
    from .engine.class_cli import add_commands as add_class_commands

    add_class_commands(commands)

    argv = sys.argv[1:] if argv is None else argv
    # These parse their own options.
    if argv and argv[0] in {"generate", "pipeline", "bench", "mutation-score", "queue", "bench-queue"}:
        try:
            if argv[0] == "generate":
                from .engine.blanks import main as command
            elif argv[0] == "pipeline":
                from .engine.pipeline import main as command
            elif argv[0] == "mutation-score":
                from checks.mutation import main as command
            elif argv[0] == "queue":
                from .engine.job_queue import main as command
            elif argv[0] == "bench-queue":
                from .bench.queue_bench import main as command
            else:
                from .bench.cli import main as command
            return command(argv[1:])
        except LabError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
