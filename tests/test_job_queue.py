"""The training queue: thirty jobs through two slots, on this machine's queue and on a real Slurm.

The jobs train ``lessons.bench.tiny_trainer`` (a 5-parameter model in plain Python): a job's
cost is then its process and the queue, a second or so, so thirty of them fit in a test. The
language-model trainer has tests of its own (test_training.py, test_dashboard_jobs.py).
"""
from __future__ import annotations

import os
import signal

import pytest

from lessons.bench.queue_bench import overheads
from lessons.bench.tiny_trainer import TrainSettings
from lessons.engine import job_queue, jobs
from lessons.engine.classroom import init_class
from lessons.engine.store import Store
from tests.accounts import accounts, private_home, shared_folder, unique_prefix
from tests.slurm_cluster import slurm_cluster
from tests.test_classroom import learner_env, python_as
from tests.test_dashboard_jobs import wait_for

SHORT = TrainSettings(steps=10, log_every=5, step_s=0.02)
LONG = TrainSettings(steps=4000, log_every=5, step_s=0.05)  # 200 s unless it is cancelled


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A lab of its own whose jobs train the tiny trainer, two at a time."""
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(jobs.TRAINER_ENV, "lessons.bench.tiny_trainer")
    monkeypatch.setenv(job_queue.SLOTS_ENV, "2")
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    monkeypatch.delenv(job_queue.QUEUE_ENV, raising=False)
    store = Store(tmp_path / "home" / "lab.sqlite", learner="ada")
    yield store
    for run in store.runs("train"):  # never leave a job behind
        if run["status"] in jobs.ACTIVE and run["pid"] and jobs.pid_alive(run["pid"]):
            os.kill(run["pid"], signal.SIGKILL)
    store.close()


def ran_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one moment."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, change in events:
        now += change
        most = max(most, now)
    return most


def thirty_jobs_with_two_cancelled(store: Store, *, timeout: float = 300.0) -> dict:
    """One long job cancelled mid-run, 28 short ones, one cancelled while still queued; check how each ended."""
    long_run = jobs.start_job(LONG, reference=False, store=store, name="long")
    short_runs = [jobs.start_job(SHORT, reference=False, store=store, name=f"short {n}") for n in range(28)]
    queued = jobs.start_job(SHORT, reference=False, store=store, name="cancelled in line")
    jobs.cancel_job(queued, store=store)
    wait_for(lambda: len(store.metrics(long_run)) >= 2, timeout=timeout)
    jobs.cancel_job(long_run, store=store)

    every = [long_run, *short_runs, queued]
    wait_for(lambda: all(jobs.job_status(run, store=store)["status"] not in jobs.ACTIVE for run in every),
             timeout=timeout, every=0.5)
    ended = {run: store.run(run) for run in every}

    cancelled = ended[long_run]
    assert cancelled["status"] == "cancelled" and cancelled["reason"].startswith("cancelled at step"), cancelled
    kept = [m["step"] for m in store.metrics(long_run)]
    assert len(kept) >= 2 and kept == sorted(set(kept)) and kept[-1] < LONG.steps, "its metrics are kept, once each"

    assert ended[queued]["status"] == "cancelled" and ended[queued]["reason"] == "cancelled while queued"
    assert store.metrics(queued) == [], "a job cancelled in line never trained"

    for run in short_runs:
        assert ended[run]["status"] == "finished", (ended[run], jobs.log_tail(run))
        assert [m["step"] for m in store.metrics(run)] == [5, 10], "each step logged once: the job ran once"
        assert jobs.log_tail(run, 200).count(f"[job] run {run} ended: finished") == 1
    intervals = [(ended[run]["summary"]["started"], ended[run]["summary"]["ended"]) for run in short_runs]
    long_metrics = store.metrics(long_run)
    intervals.append((long_metrics[0]["t"], long_metrics[-1]["t"]))
    assert ran_at_once(intervals) == 2, "two slots: two jobs at a time, never three"
    return ended


def test_slots_from_memory_and_the_wait_estimate():
    assert job_queue.slots_for(80_000, 9_000, 0) == 8, "0.9 × 80 GB of free memory holds 8 jobs of 9 GB"
    assert job_queue.slots_for(80_000, None, 0) == 1, "nothing measured yet: one at a time"
    assert job_queue.slots_for(4_000, 9_000, 0) == 1, "a job too big for the free memory still gets its one slot"
    assert job_queue.slots_for(80_000, 9_000, 3) == 3, "a set number wins"
    # two jobs running 50 s and 10 s of a typical 60 s; one job ahead takes the slot freeing at 10 s
    assert job_queue.estimate_wait([50.0, 10.0], ahead=1, slots=2, typical_s=60.0) == 50.0
    assert job_queue.estimate_wait([], ahead=0, slots=2, typical_s=60.0) == 0.0
    assert job_queue.estimate_wait([30.0], ahead=3, slots=1, typical_s=60.0) == 210.0
    assert job_queue.estimate_wait([30.0], ahead=0, slots=1, typical_s=None) is None
    assert overheads([{"slot": 0, "submitted": 0.0, "started": 0.4, "ended": 2.0},
                      {"slot": 0, "submitted": 0.1, "started": 2.3, "ended": 4.0}]) == [0.4, 0.3]


def test_the_queue_settings_refuse_what_they_cannot_mean(monkeypatch):
    monkeypatch.delenv("LAB_CLASS_DIR", raising=False)
    monkeypatch.setenv(job_queue.QUEUE_ENV, "ray")
    with pytest.raises(job_queue.LabError, match="LAB_QUEUE='ray' is no queue this lab knows: use one of local, slurm"):
        job_queue.queue_settings()
    monkeypatch.setenv(job_queue.QUEUE_ENV, "local")
    monkeypatch.setenv(job_queue.SLOTS_ENV, "two")
    with pytest.raises(job_queue.LabError, match="LAB_QUEUE_SLOTS='two' is not a whole number"):
        job_queue.queue_settings()


@pytest.mark.slow
def test_thirty_jobs_through_two_local_slots(lab):
    thirty_jobs_with_two_cancelled(lab)
    queue = job_queue.LocalQueue()
    try:
        tickets = queue.tickets()
        assert queue.tickets(active_only=True) == [], "the queue drained"
        runs = [ticket["run_id"] for ticket in tickets]
        assert len(runs) == 30 and len(set(runs)) == 30, "one ticket per job"
        assert sorted(t["state"] for t in tickets) == ["cancelled"] * 2 + ["finished"] * 28
        for slot in (0, 1):  # a slot is never held by two jobs at once
            held = [(t["started"], t["ended"]) for t in tickets if t["slot"] == slot]
            assert held and ran_at_once(held) == 1
        table = "\n".join(job_queue.status_lines(queue))
        assert "2 slot(s) on the CPU" in table and table.count(" finished ") == 28
    finally:
        queue.close()


def test_jobs_killed_running_or_waiting_free_the_line_and_the_next_one_runs(lab, monkeypatch):
    monkeypatch.setenv(job_queue.SLOTS_ENV, "1")
    doomed = jobs.start_job(LONG, reference=False, store=lab)
    doomed_waiting = jobs.start_job(SHORT, reference=False, store=lab)
    nxt = jobs.start_job(SHORT, reference=False, store=lab)
    wait_for(lambda: lab.metrics(doomed))
    waiting = jobs.job_status(nxt, store=lab)
    assert waiting["status"] == "queued" and waiting["queue_view"]["position"] == 2
    assert job_queue.describe(waiting["queue_view"]).startswith("number 2 in line (2 waiting, 1 of 1 slots busy)")
    wait_for(lambda: (jobs.run_dir(doomed_waiting) / "job.log").read_text().count("[queue] waiting"))
    os.kill(lab.run(doomed_waiting)["pid"], signal.SIGKILL)
    os.kill(lab.run(doomed)["pid"], signal.SIGKILL)
    assert wait_for(lambda: jobs.job_status(nxt, store=lab)["status"] == "finished")
    assert jobs.job_status(doomed, store=lab)["status"] == "failed"
    assert jobs.job_status(doomed_waiting, store=lab)["status"] == "failed"
    queue = job_queue.LocalQueue()
    try:
        states = {t["run_id"]: t["state"] for t in queue.tickets()}
        assert states == {doomed: "lost", doomed_waiting: "lost", nxt: "finished"}
    finally:
        queue.close()


def test_out_of_memory_fails_naming_the_setting_and_frees_the_slot(lab, monkeypatch):
    from tests.dashboard_fake_training import TrainSettings as FakeSettings

    monkeypatch.setenv(jobs.TRAINER_ENV, "tests.dashboard_fake_training")
    monkeypatch.setenv(job_queue.SLOTS_ENV, "1")
    too_big = jobs.start_job(FakeSettings(batch_size=1000), reference=False, store=lab)
    after = jobs.start_job(FakeSettings(max_steps=3), reference=False, store=lab)
    assert wait_for(lambda: jobs.job_status(after, store=lab)["status"] == "finished")
    failed = jobs.job_status(too_big, store=lab)
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("ran out of memory: lower the batch size (now 1000; try 500)")


def test_learners_of_a_class_share_one_queue_in_the_order_they_pressed_start():
    """Three accounts, one slot: their jobs run one after another, in order, through the class's queue file."""
    prefix = unique_prefix("lkq")
    with shared_folder("queue") as parent, accounts(prefix, 3, group=f"{prefix}ins") as names:
        config = init_class(parent / "class", f"{prefix}ins")
        start = ("import sys, time; from lessons.engine import jobs; from lessons.bench.tiny_trainer import "
                 "TrainSettings; run = jobs.start_job(TrainSettings(steps=int(sys.argv[1]), step_s=0.05), "
                 "reference=False); print(run)")
        started = []
        for name, steps in zip(names, (40, 10, 10)):
            env = learner_env(private_home(parent, name), config.folder, LAB_JOBS_TRAINER="lessons.bench.tiny_trainer",
                              LAB_QUEUE_SLOTS="1")
            done = python_as(name, env, start.replace("int(sys.argv[1])", str(steps)))
            assert done.returncode == 0, done.stderr
            started.append(done.stdout.strip())
        queue = job_queue.LocalQueue(config.folder / job_queue.QUEUE_DIR)
        try:
            wait_for(lambda: [t["state"] for t in queue.tickets()] == ["finished"] * 3, timeout=120, every=0.3)
            tickets = queue.tickets()
        finally:
            queue.close()
        assert [t["account"] for t in tickets] == names and [t["run_id"] for t in tickets] == started
        assert ran_at_once([(t["started"], t["ended"]) for t in tickets]) == 1
        assert [t["started"] for t in tickets] == sorted(t["started"] for t in tickets), "first come, first served"
        leftovers = sorted(path.name for path in (config.folder / job_queue.QUEUE_DIR).iterdir())
        assert leftovers == ["queue.sqlite", "slot-0.lock"], "no journal left behind by any account"


@pytest.mark.slow
def test_thirty_jobs_through_two_gpus_of_a_real_slurm(lab, monkeypatch):
    """The same thirty jobs as batch jobs of a one-node Slurm with two (counted) GPUs, each asking for one."""
    with shared_folder("slurm") as parent, slurm_cluster(parent / "cluster", gpus=2) as cluster:
        for key, value in cluster.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(job_queue.QUEUE_ENV, "slurm")
        monkeypatch.setenv(job_queue.PARTITION_ENV, cluster.partition)
        ended = thirty_jobs_with_two_cancelled(lab)
        assert cluster.run("squeue", "-h").stdout.strip() == "", "the queue drained"
        slurm_ids = {run: jobs.slurm_job(row) for run, row in ended.items()}
        assert all(slurm_ids.values()) and len(set(slurm_ids.values())) == 30, "one batch job per run"
        states = [job_queue.slurm_state(job)["state"] for job in slurm_ids.values()]
        # the long one stopped itself after its step, so Slurm saw it complete; the one in line was scancel-ed
        assert states == ["COMPLETED"] * 29 + ["CANCELLED"], states
        script = (jobs.run_dir(next(iter(ended))) / "job.sbatch").read_text()
        assert "#SBATCH --gres=gpu:1" in script and f"#SBATCH --partition={cluster.partition}" in script

        # A job killed outright (no chance to say how it ended) is failed by what Slurm says of it.
        killed = jobs.start_job(LONG, reference=False, store=lab, name="killed")
        wait_for(lambda: lab.metrics(killed), timeout=60)
        running = jobs.job_status(killed, store=lab)
        assert running["status"] == "running" and running["queue_view"]["state"] == "RUNNING"
        assert job_queue.describe(running["queue_view"]).startswith(f"Slurm job {jobs.slurm_job(running)}: RUNNING since")
        os.kill(lab.run(killed)["pid"], signal.SIGKILL)  # the node is this machine: its process is in reach
        failed = wait_for(lambda: (s := jobs.job_status(killed, store=lab))["status"] not in jobs.ACTIVE and s)
        assert failed["status"] == "failed" and failed["reason"].startswith(f"Slurm job {jobs.slurm_job(running)} ended")
        assert lab.metrics(killed), "the metrics it wrote are kept"
