"""How much the warm worker saves: one stage's planted mistakes, each run cold and then warm, side by side.

    .venv/bin/python -m tests.bench_check_runs stage3 [stage2 ...]

Cold and warm alternate mistake by mistake, so a machine that gets busier halfway slows both alike; the
ratio of the totals is the figure to quote (docs/benchmarks.md, "Test suite time").
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from checks.warm_worker import WarmWorker
from lessons.engine.paths import lab_home
from lessons.engine.stages import STAGES_BY_KEY
from tests.checks_runner import run_checks, run_environment
from tests.test_stage_checks import all_mistakes


def main(stages: list[str]) -> int:
    if not stages or any(key not in STAGES_BY_KEY for key in stages):
        print(f"usage: python -m tests.bench_check_runs STAGE... (one of {', '.join(STAGES_BY_KEY)})",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "lab-home"  # a private store, sharing the converted model, as tests/conftest.py does
        home.mkdir()
        (home / "models").symlink_to(lab_home() / "models", target_is_directory=True)
        os.environ["LAB_HOME"] = str(home)
        started = time.perf_counter()
        warm = WarmWorker(Path(folder), env=run_environment())
        print(f"warm worker ready in {time.perf_counter() - started:.1f} s (paid once per test process)")
        totals = {"cold": 0.0, "warm": 0.0}
        try:
            for mistake in (m for m in all_mistakes() if m.stage in stages):
                stage = STAGES_BY_KEY[mistake.stage]
                planted = Path(folder) / stage.reference_file.name
                planted.write_text(stage.reference_file.read_text().replace(mistake.old, mistake.new))
                seconds = {}
                for kind, worker in (("cold", None), ("warm", warm)):
                    run = run_checks(mistake.stage, lesson_file=planted, warm=worker)
                    if not run.failed():
                        print(f"  {kind} run did not catch {mistake.name}: not a fair timing", file=sys.stderr)
                        return 1
                    seconds[kind] = run.seconds
                    totals[kind] += run.seconds
                print(f"  {mistake.stage} cold {seconds['cold']:5.1f} s  warm {seconds['warm']:5.1f} s  "
                      f"{mistake.name[:70]}", flush=True)
        finally:
            warm.stop()
    print(f"total: cold {totals['cold']:.1f} s, warm {totals['warm']:.1f} s, "
          f"warm/cold = {totals['warm'] / totals['cold']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
