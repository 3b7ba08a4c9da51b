"""The Slurm test cluster (tests/slurm_cluster.py) is a real one: jobs queue for its GPUs and run as their owner.

One cluster with 2 GPUs and one unprivileged account serve both tests: three
``--gres=gpu:1`` jobs of that account run two at a time, each as the account
and writing into its own folder; ``scancel`` ends a running job, and Slurm still
answers for it afterwards. A third, one-GPU cluster shows the GPU index reaching
the job when asked for. CI runs as root, so nothing here is skipped there.
"""
from __future__ import annotations

import pwd
import time
from collections import Counter

import pytest

from tests.accounts import accounts, private_home, run_as, shared_folder, unique_prefix
from tests.slurm_cluster import KILL_WAIT, slurm_cluster

GPUS = 2


@pytest.fixture(scope="module")
def lab():
    """(cluster, account, its home): the account is removed only after the cluster has stopped its jobs."""
    with accounts(unique_prefix("slm"), 1) as [account], shared_folder("slurm") as folder:
        home = private_home(folder, account)
        with slurm_cluster(folder / "cluster", gpus=GPUS) as cluster:
            yield cluster, account, home


def _as(lab, *command: str):
    cluster, account, home = lab
    env = cluster.environ(HOME=str(home), USER=account, LOGNAME=account)
    return run_as(account, list(command), env=env, cwd=home, capture_output=True, text=True, timeout=30)


def _sbatch(lab, script: str, *options: str) -> str:
    home = lab[2]
    answer = _as(lab, "sbatch", "--parsable", f"--output={home}/slurm-%j.out", *options, "--wrap", script)
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.strip().split(";")[0]


def _queue(cluster, jobs: list[str]) -> dict[str, tuple[str, str]]:
    """Job id -> (state, reason) for those of ``jobs`` still queued or running."""
    answer = cluster.run("squeue", "-h", "-j", ",".join(jobs), "-o", "%i %T %r")
    assert answer.returncode == 0, answer.stderr
    return {job: (state, reason) for job, state, reason in (line.split(None, 2) for line in answer.stdout.splitlines())}


def _job_state(cluster, job: str) -> str:
    answer = cluster.run("scontrol", "show", "job", job)
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.split("JobState=", 1)[1].split()[0]


def test_gpu_jobs_of_an_account_run_two_at_a_time_as_that_account(lab):
    cluster, account, home = lab
    script = 'sleep 3; id -un > {home}/job-{n}.txt; echo "${{CUDA_VISIBLE_DEVICES-none}} $SLURM_GPUS_ON_NODE"'
    jobs = [_sbatch(lab, script.format(home=home, n=n), "--gres=gpu:1") for n in range(3)]

    snapshots, busy_gpus = [], None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = _queue(cluster, jobs)
        if not queue:
            break
        snapshots.append(queue)
        states = Counter(state for state, _ in queue.values())
        if busy_gpus is None and states["RUNNING"] == GPUS:
            busy_gpus = cluster.run("sinfo", "-h", "-N", "-O", "GresUsed").stdout.strip()
        time.sleep(0.2)
    else:
        pytest.fail(f"jobs still queued after 30 s: {snapshots[-1]}\n{cluster.logs()}")

    running = [sum(state == "RUNNING" for state, _ in queue.values()) for queue in snapshots]
    assert max(running) == GPUS, snapshots
    full = next(queue for queue in snapshots if len(queue) == 3 and Counter(s for s, _ in queue.values())["RUNNING"] == 2)
    waiting = [(job, reason) for job, (state, reason) in full.items() if state == "PENDING"]
    assert len(waiting) == 1, full
    assert waiting[0][1] == "Resources", full
    assert busy_gpus and busy_gpus.startswith(f"gpu:{GPUS}"), busy_gpus

    uid = pwd.getpwnam(account).pw_uid
    for n, job in enumerate(jobs):
        assert _job_state(cluster, job) == "COMPLETED"
        for path in (home / f"job-{n}.txt", home / f"slurm-{job}.out"):
            assert path.exists(), f"{path} missing\n{cluster.logs()}"
            assert path.stat().st_uid == uid, path
        assert (home / f"job-{n}.txt").read_text().strip() == account
        # Counted GPUs: Slurm says how many the job has, not which (no CUDA_VISIBLE_DEVICES).
        assert (home / f"slurm-{job}.out").read_text().split() == ["none", "1"]


def test_scancel_ends_a_running_job_with_sigterm_and_slurm_still_answers_for_it(lab):
    cluster, account, home = lab
    log = home / "cancelled.txt"
    # Slurm signals every process of the job: the loop outlives a sleep that gets SIGTERM before the shell does,
    # and `sleep & wait` lets the shell run its trap at once instead of after the sleep.
    job = _sbatch(lab, f"trap 'echo TERM >> {log}; exit 143' TERM; echo started > {log}; "
                       "while :; do sleep 1 & wait $!; done", "--gres=gpu:1")
    deadline = time.monotonic() + 15
    while not (log.exists() and _queue(cluster, [job]).get(job, ("",))[0] == "RUNNING"):
        assert time.monotonic() < deadline, f"job {job} never ran: {_queue(cluster, [job])}\n{cluster.logs()}"
        time.sleep(0.2)

    cancelled_at = time.monotonic()
    answer = _as(lab, "scancel", job)
    assert answer.returncode == 0, answer.stderr
    while _queue(cluster, [job]):
        assert time.monotonic() - cancelled_at < KILL_WAIT + 10, _queue(cluster, [job])
        time.sleep(0.2)

    assert _job_state(cluster, job) == "CANCELLED"
    assert log.read_text().split() == ["started", "TERM"]


def test_with_device_files_slurm_hands_each_job_its_gpu_index():
    with shared_folder("slurm-cuda") as folder, slurm_cluster(folder, gpus=1, cuda_visible_devices=True) as cluster:
        answer = cluster.run("sbatch", "--parsable", "--gres=gpu:1", f"--output={folder}/job.out", "--wrap",
                             'echo "$CUDA_VISIBLE_DEVICES $SLURM_JOB_GPUS"')
        assert answer.returncode == 0, answer.stderr
        job = answer.stdout.strip()
        deadline = time.monotonic() + 15
        while _job_state(cluster, job) != "COMPLETED":
            assert time.monotonic() < deadline, f"{_job_state(cluster, job)}\n{cluster.logs()}"
            time.sleep(0.2)
        assert (folder / "job.out").read_text().split() == ["0", "0"]
