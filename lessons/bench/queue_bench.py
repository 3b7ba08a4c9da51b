"""``python -m lessons bench-queue``: what the training queue costs, measured.

Runs ``--jobs`` tiny jobs (``lessons.bench.tiny_trainer``: plain Python, no model to load, so the
queue is what is timed) through this machine's queue with 1, 2 and 4 slots, each in a fresh lab
folder, and prints per slot count:

* jobs per minute, from the first submit to the last job's end;
* the queue's overhead per job: from the moment the job could have started (submitted, and a slot
  free) to the moment it did — the job's process starting, its ticket, its wait for the next poll.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass


@dataclass
class QueueBenchSettings:
    jobs: int = 12                  # tiny jobs per slot count
    slots: tuple[int, ...] = (1, 2, 4)  # the slot counts to compare
    steps: int = 20                 # steps of each tiny job
    step_s: float = 0.05            # seconds each step stands in for


def overheads(tickets: list[dict]) -> list[float]:
    """For each ticket: seconds from when it could start (submitted and its slot free) to its start.

    >>> overheads([{"slot": 0, "submitted": 0.0, "started": 0.4, "ended": 2.0},
    ...            {"slot": 0, "submitted": 0.1, "started": 2.3, "ended": 4.0}])
    [0.4, 0.3]
    """
    free_since: dict[int, float] = {}
    found = []
    for ticket in sorted(tickets, key=lambda row: row["started"]):
        could = max(ticket["submitted"], free_since.get(ticket["slot"], 0.0))
        found.append(round(ticket["started"] - could, 6))
        free_since[ticket["slot"]] = ticket["ended"]
    return found


def run_once(settings: QueueBenchSettings, slots: int) -> dict:
    """``settings.jobs`` tiny jobs through a fresh local queue of ``slots`` slots; the measurements back."""
    from lessons.engine import job_queue, jobs
    from lessons.engine.store import Store

    from .tiny_trainer import TrainSettings

    with tempfile.TemporaryDirectory(prefix="bench-queue-") as home:
        os.environ.update({"LAB_HOME": home, "LAB_QUEUE": "local", "LAB_QUEUE_SLOTS": str(slots),
                           jobs.TRAINER_ENV: "lessons.bench.tiny_trainer"})
        os.environ.pop("LAB_CLASS_DIR", None)  # the benchmark's queue is its own, never a class's
        started = time.time()
        with Store() as store:
            ids = [jobs.start_job(TrainSettings(steps=settings.steps, step_s=settings.step_s, seed=number),
                                  reference=False, store=store, name=f"bench-queue {number}")
                   for number in range(settings.jobs)]
            while any(jobs.job_status(run_id, store=store)["status"] in jobs.ACTIVE for run_id in ids):
                time.sleep(0.2)
            statuses = [store.run(run_id)["status"] for run_id in ids]
        queue = job_queue.LocalQueue()
        try:
            tickets = [row for row in queue.tickets() if row["started"]]
        finally:
            queue.close()
    if statuses.count("finished") != settings.jobs:
        raise RuntimeError(f"not every job finished: {statuses}")
    wall = max(row["ended"] for row in tickets) - started
    waits = overheads(tickets)
    return {"slots": slots, "jobs": settings.jobs, "wall_s": wall, "jobs_per_min": settings.jobs / wall * 60,
            "overhead_median_s": statistics.median(waits), "overhead_max_s": max(waits),
            "job_s": statistics.median(row["ended"] - row["started"] for row in tickets)}


def table(results: list[dict]) -> str:
    lines = [f"{'slots':>5}  {'jobs':>4}  {'wall':>7}  {'jobs/min':>8}  {'overhead/job (median, max)':>27}  "
             f"{'one job runs':>12}"]
    for row in results:
        lines.append(f"{row['slots']:>5}  {row['jobs']:>4}  {row['wall_s']:>6.1f}s  {row['jobs_per_min']:>8.1f}  "
                     f"{row['overhead_median_s']:>14.2f}s, {row['overhead_max_s']:.2f}s{'':>5}  {row['job_s']:>11.2f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    defaults = QueueBenchSettings()
    parser = argparse.ArgumentParser(prog="python -m lessons bench-queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="tiny jobs per slot count")
    parser.add_argument("--slots", type=int, nargs="+", default=list(defaults.slots), help="slot counts to compare")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="steps of each tiny job")
    parser.add_argument("--step-s", type=float, default=defaults.step_s, help="seconds each step stands in for")
    args = parser.parse_args(argv)
    settings = QueueBenchSettings(args.jobs, tuple(args.slots), args.steps, args.step_s)
    results = []
    for slots in settings.slots:
        print(f"[bench-queue] {settings.jobs} jobs through {slots} slot(s) …", flush=True)
        results.append(run_once(settings, slots))
    print(f"\n{settings.jobs} tiny jobs of {settings.steps} steps × {settings.step_s} s, on {os.cpu_count()} CPU "
          "core(s):\n" + table(results))
    return 0
