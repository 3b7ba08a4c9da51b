"""Training in the background: a run the dashboard starts, watches, cancels and resumes.

Training takes minutes to hours, far longer than a web page may freeze. So the
dashboard never trains itself: ``start_job`` writes the run's settings to the
lab's store and starts a separate process,

    python -m lessons.engine.jobs run RUN_ID

in its own session (closing the browser tab, or restarting the dashboard, does
not stop it), with its output in ``$LAB_HOME/runs/RUN_ID/job.log``. That
process first waits its turn in the training queue (``job_queue``: a slot of
this machine's queue; with ``LAB_QUEUE=slurm`` it is a Slurm batch job
instead), then calls ``lessons.engine.training.run_training``, which writes
every metric to the store as it goes; the page only reads the store.

* ``job_status(run_id)``: the run as the store has it. A run marked running
  whose process is gone (killed, the machine slept, out of memory) is marked
  failed there and then, with the metrics it wrote kept.
* ``cancel_job(run_id)``: leaves a ``CANCEL`` file in the run's folder; the
  training loop's ``should_stop`` sees it after the current step and stops
  cleanly, keeping its last checkpoint.
* ``resume_job(run_id)``: a failed or cancelled run goes on from its last
  checkpoint (``resume=True``), under the same run id, so its loss curve
  continues where it stopped.

A run's config is ``asdict(settings)`` plus one key, ``"reference"``: whether
it trained with the reference solutions (demo mode) rather than the learner's
own code, so the Home page never counts a demo run as the learner's work.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import psutil

from . import job_queue
from .errors import LabError
from .paths import PROJECT_ROOT, lab_home
from .quiet import quiet_library_notices
from .store import Store

# The stages whose code a training run uses: data, tokenizing, the collator, LoRA.
TRAINING_STAGES = ("stage2", "stage3", "stage4a", "stage4b")
# Where the trainer comes from. Tests point this at a fake (a module with
# ``TrainSettings`` and ``run_training``, optionally ``load_modules``) so that
# they exercise the job machinery without training a model.
TRAINER_ENV = "LAB_JOBS_TRAINER"
DEFAULT_TRAINER = "lessons.engine.training"

ACTIVE = ("queued", "running")
ENDED_UNEXPECTEDLY = "the training process ended unexpectedly (killed?)"
LOG_NAME, CANCEL_NAME = "job.log", "CANCEL"

# Popen objects of the jobs this process started: reaped in the background so a
# finished job never lingers as a zombie (a zombie's pid still looks alive).
_children: dict[str, subprocess.Popen] = {}


# -- places ------------------------------------------------------------------------
def runs_dir() -> Path:
    return lab_home() / "runs"


def run_dir(run_id: str) -> Path:
    """``$LAB_HOME/runs/RUN_ID``: the job's log, checkpoints, adapter and cancel flag."""
    return runs_dir() / run_id


def log_path(run_id: str) -> Path:
    return run_dir(run_id) / LOG_NAME


def log_tail(run_id: str, lines: int = 20) -> str:
    """The last lines of a job's log (what it printed), or '' when there is none yet."""
    path = log_path(run_id)
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 16_000))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


# -- the trainer --------------------------------------------------------------------
def trainer() -> ModuleType:
    """The module that trains: ``lessons.engine.training`` unless ``LAB_JOBS_TRAINER`` names another."""
    return importlib.import_module(os.environ.get(TRAINER_ENV) or DEFAULT_TRAINER)


def settings_from_config(config: dict, settings_class: type | None = None):
    """Rebuild the ``TrainSettings`` a run was started with from its stored config.

    Keys the class does not know (``"reference"``, or a field removed since) are
    left out, so an old run can still be resumed.
    """
    settings_class = settings_class or trainer().TrainSettings
    known = {field.name for field in fields(settings_class)}
    values = {key: value for key, value in (config or {}).items() if key in known}
    if "target_modules" in values and isinstance(values["target_modules"], tuple):
        values["target_modules"] = list(values["target_modules"])
    return settings_class(**values)


def own_dataset_splits(own: dict, settings, *, reference: bool):
    """Stage 7's splits of the learner's own file: load, clean, format, split (the same as its page shows).

    The file's size is checked before the learner's loader reads it, and its columns against the
    template before anything is cleaned (``lessons.engine.own_files``): a file the job cannot use
    fails at once, with the columns it has and the ones the template needs.
    """
    from . import own_files
    from .modules import load_stage_module

    own_files.check_size(own["path"])
    stage7 = load_stage_module("stage7", reference=reference)
    template = own.get("template") or stage7.QA_TEMPLATE
    rows = stage7.load_own_dataset(own["path"])
    own_files.check_columns(rows, stage7.template_fields(template), own["path"])
    fields = own.get("text_fields") or [f for f in stage7.template_fields(template) if f in rows[0]]
    options = {"min_chars": int(own["min_chars"])} if own.get("min_chars") else {}  # as the page cleaned it
    clean, report = stage7.clean_examples(rows, text_fields=fields, **options)
    print(f"[job] own dataset {own['path']}: {report.get('rows_in')} rows in, {report.get('rows_out')} clean",
          flush=True)
    return stage7.prepare_own_splits(clean, template, test_size=settings.test_size, seed=settings.seed)


def load_training_modules(reference: bool) -> dict[str, ModuleType]:
    """The stage modules a run uses: the learner's own files, or the reference solutions."""
    from .modules import load_stage_module

    return {key: load_stage_module(key, reference=reference) for key in TRAINING_STAGES}


# -- starting, watching, stopping ------------------------------------------------------
def start_job(settings, *, reference: bool, store: Store | None = None, name: str = "",
              own_dataset: dict | None = None) -> str:
    """Queue a training run with ``settings`` and start its process; return the run id at once.

    Args:
        settings: a ``TrainSettings`` (any dataclass whose fields the trainer takes).
        reference: train with the reference solutions (demo mode) instead of the learner's files.
        store: the store to record it in; default ``Store()``.
        name: a label for tables and charts; default none.
        own_dataset: train on the learner's own file instead of recipes (stage 7):
            ``{"path": ..., "template": ..., "text_fields": [...], "min_chars": N}``; default none (recipes).
    """
    if not is_dataclass(settings):
        raise TypeError(f"start_job needs a TrainSettings dataclass, got {type(settings).__name__}")
    own_store = store is None
    store = store or Store()
    try:
        config = {**asdict(settings), "reference": bool(reference)}
        if own_dataset:
            config["own_dataset"] = {key: own_dataset[key] for key in ("path", "template", "text_fields", "min_chars")
                                     if key in own_dataset}
        run_id = store.start_run("train", config, name=name, status="queued")
        folder = run_dir(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        store.update_run(run_id, checkpoint_dir=str(folder))
        submit_job(run_id, store, resume=False)
        return run_id
    finally:
        if own_store:
            store.close()


def submit_job(run_id: str, store: Store, *, resume: bool, job: str = "run") -> str:
    """Put the run's job in the queue: its own process on this machine (which waits for a slot), or a Slurm
    batch job. Return where it went: ``"local"`` or ``"slurm:JOBID"``."""
    settings = job_queue.queue_settings()
    command, env = _job_command(run_id, store, resume=resume, job=job)
    _log_banner(run_id, resume)
    if settings.backend == "slurm":
        slurm_id = job_queue.slurm_submit(command, name=f"lora-kitchen-{job}-{run_id}", folder=run_dir(run_id),
                                          log=log_path(run_id), env=env, settings=settings)
        where = f"slurm:{slurm_id}"
        store.update_run(run_id, queue=where, pid=None)
        return where
    queue = job_queue.LocalQueue(settings=settings)
    try:
        ticket = queue.submit(run_id, "train" if job == "run" else job, account=store.learner)
        try:
            pid = spawn_job_process(run_id, store, command, env)
        except BaseException:
            queue.end(ticket, "failed", note="its process could not be started")
            raise
        queue.attach(run_id, pid)
    finally:
        queue.close()
    store.update_run(run_id, queue="local")
    return "local"


def _job_command(run_id: str, store: Store, *, resume: bool, job: str) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "lessons.engine.jobs", job, run_id,
               "--store", str(store.path), "--learner", store.learner]
    if resume:
        command.append("--resume")
    env = dict(os.environ)
    # The job imports `lessons` from this project whatever the caller's working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["LAB_HOME"] = str(lab_home())
    return command, env


def _log_banner(run_id: str, resume: bool) -> None:
    run_dir(run_id).mkdir(parents=True, exist_ok=True)
    with log_path(run_id).open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {'resuming' if resume else 'starting'} "
                  f"run {run_id} ===\n".encode())


def spawn_job_process(run_id: str, store: Store, command: list[str], env: dict) -> int:
    """Start the job's ``command`` (``_job_command``: ``run`` trains, ``evaluate`` evaluates) in its own
    session, its output in the run's ``job.log``; it waits for a slot of the local queue, then works."""
    with log_path(run_id).open("ab") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # a closed dashboard does not take the job with it
    store.update_run(run_id, pid=process.pid)
    _children[run_id] = process
    threading.Thread(target=process.wait, name=f"reap-{run_id}", daemon=True).start()
    return process.pid


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id is running (not ended, not a zombie)."""
    if not pid or pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() not in {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}
    except psutil.NoSuchProcess:  # ZombieProcess is one of these too
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: alive, but not ours to judge


def _is_job_process(pid: int, run_id: str) -> bool:
    """The pid belongs to this run's job (not a later process that got the same number)."""
    try:
        return run_id in "\0".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def cancel_requested(run_id: str) -> bool:
    return (run_dir(run_id) / CANCEL_NAME).exists()


def job_status(run_id: str, *, store: Store | None = None) -> dict:
    """The run as the store has it, checked against its process.

    Returns the store's run row (``status``, ``reason``, ``config``, ``summary``, ...)
    plus ``cancel_requested``, ``step``, ``total_steps``, ``fraction``, ``eta_s``,
    ``tokens_per_s`` and ``train_loss``/``eval_loss`` (the latest of each), so a
    page can draw its progress bar from one call. A queued or running run whose
    process is gone becomes failed here (or cancelled, if a cancel was asked for).
    """
    own_store = store is None
    store = store or Store()
    try:
        run = store.run(run_id)
        if run is None:
            raise LabError(f"no training run {run_id!r} in {store.path}")
        slurm_id = slurm_job(run)
        view = None  # where the job waits, for the page
        if run["status"] in ACTIVE:
            if slurm_id:
                view = {"backend": "slurm", "job": slurm_id, **job_queue.slurm_state(slurm_id)}
                alive = view["state"] in job_queue.SLURM_ACTIVE
            else:
                child = _children.get(run_id)
                if child is not None:
                    child.poll()
                alive = pid_alive(run["pid"]) and _is_job_process(run["pid"], run_id)
                if alive and run["status"] == "queued":
                    view = local_queue_view(run_id)
            if not alive:
                time.sleep(0.2)  # a job that just finished may be writing its last status
                run = store.run(run_id)
                if run["status"] in ACTIVE:
                    if cancel_requested(run_id) or (view and view["state"] == "CANCELLED"):
                        store.update_run(run_id, status="cancelled", reason="cancelled before it could stop cleanly")
                    elif slurm_id:
                        store.update_run(run_id, status="failed", reason=f"Slurm job {slurm_id} ended "
                                         f"({view['state']}) before the run said how it ended")
                    else:
                        store.update_run(run_id, status="failed", reason=ENDED_UNEXPECTEDLY)
                    run = store.run(run_id)
        if view and run["status"] in ACTIVE:
            run["queue_view"] = view
        run.update(_progress(store.metrics(run_id), run))
        run["cancel_requested"] = cancel_requested(run_id)
        return run
    finally:
        if own_store:
            store.close()


def slurm_job(run: dict) -> str:
    """The Slurm job id of a run submitted to Slurm ("" for a local one)."""
    queue = run.get("queue") or ""
    return queue.split(":", 1)[1] if queue.startswith("slurm:") else ""


def local_queue_view(run_id: str) -> dict | None:
    """Where a queued local run stands in line (``job_queue.LocalQueue.view``), or None when it cannot be read."""
    try:
        queue = job_queue.LocalQueue()
    except (LabError, OSError, sqlite3.Error):
        return None
    try:
        queue.reap()  # a page may be the only one looking: dead tickets must not hold its place in line
        return queue.view(run_id)
    finally:
        queue.close()


def expected_total_steps(config: dict, summary: dict | None = None) -> int | None:
    """How many optimizer steps the run will take, when it can be told.

    The trainer's own count (``summary["total_steps"]``) wins; else ``max_steps``
    when set; else epochs × batches per epoch from the data size.
    """
    summary = summary or {}
    for key in ("total_steps", "max_steps"):
        if summary.get(key):
            return int(summary[key])
    if (config or {}).get("max_steps") and int(config["max_steps"]) > 0:
        return int(config["max_steps"])
    try:
        train_rows = int(config["n_recipes"]) * (1 - float(config.get("test_size", 0.1)))
        batches = math.ceil(train_rows / int(config["batch_size"]))
        return max(1, math.ceil(batches * float(config.get("epochs", 1))))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def _progress(metrics: list[dict], run: dict) -> dict:
    train = [m for m in metrics if m["split"] == "train" and m.get("loss") is not None]
    evals = [m for m in metrics if m["split"] in ("validation", "eval") and m.get("loss") is not None]
    step = max((m["step"] for m in metrics), default=0)
    total = expected_total_steps(run.get("config") or {}, run.get("summary") or {})
    latest = train[-1] if train else {}
    speeds = [m["tokens_per_s"] for m in metrics if m.get("tokens_per_s")]
    eta = latest.get("eta_s")
    if eta is None and total and step and len(train) >= 2:
        seconds_per_step = (train[-1]["t"] - train[0]["t"]) / max(1, train[-1]["step"] - train[0]["step"])
        eta = max(0.0, (total - step) * seconds_per_step)
    finished = run.get("status") == "finished"
    return {"step": step, "total_steps": total,
            "fraction": 1.0 if finished else (min(1.0, step / total) if total else 0.0),
            "eta_s": 0.0 if finished else eta, "tokens_per_s": speeds[-1] if speeds else None,
            "train_loss": latest.get("loss"), "eval_loss": evals[-1]["loss"] if evals else None}


def cancel_job(run_id: str, *, store: Store | None = None) -> None:
    """Ask a run to stop after its current step; it keeps its last checkpoint.

    A run still waiting in the queue leaves it at once: a waiting local job sees the request within its
    poll, a pending Slurm job is ``scancel``-ed. A running job, local or Slurm, stops itself after its step
    when it sees the request (the run folder is on the file system the cluster shares); an instructor's own
    ``scancel`` of a running job sends SIGTERM, which the job turns into the same stop.
    """
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CANCEL_NAME).write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    own_store = store is None
    store = store or Store()
    try:
        run = store.run(run_id)
        slurm_id = slurm_job(run) if run else ""
        if slurm_id and run["status"] in ACTIVE:
            if job_queue.slurm_state(slurm_id)["state"] == "PENDING":
                job_queue.slurm_cancel(slurm_id)
                store.update_run(run_id, status="cancelled", reason="cancelled while queued")
        elif run and run["status"] == "queued" and not (pid_alive(run["pid"]) and _is_job_process(run["pid"], run_id)):
            store.update_run(run_id, status="cancelled", reason="cancelled before it started")
    finally:
        if own_store:
            store.close()


def resume_job(run_id: str, *, store: Store | None = None) -> str:
    """Continue a failed or cancelled run from its last checkpoint, under the same run id."""
    own_store = store is None
    store = store or Store()
    try:
        run = job_status(run_id, store=store)
        if run["status"] in ACTIVE:
            raise LabError(f"run {run_id} is still {run['status']}: there is nothing to resume.")
        if run["status"] == "finished":
            raise LabError(f"run {run_id} finished already: start a new run to train more.")
        (run_dir(run_id) / CANCEL_NAME).unlink(missing_ok=True)
        store.update_run(run_id, status="queued", reason="")
        submit_job(run_id, store, resume=True)
        return run_id
    finally:
        if own_store:
            store.close()


def newest_active_run(store: Store) -> dict | None:
    """The newest training run still queued or running (the page re-attaches to it), checked against its process."""
    for run in reversed(store.runs("train")):
        if run["status"] in ACTIVE:
            checked = job_status(run["id"], store=store)
            if checked["status"] in ACTIVE:
                return checked
    return None


# -- why a run failed, in words ---------------------------------------------------------
def explain_failure(error: BaseException, settings: Any = None) -> str:
    """The reason a failed run shows: for running out of memory, which setting to lower."""
    text = f"{type(error).__name__}: {error}"
    is_oom = isinstance(error, MemoryError) or "out of memory" in str(error).lower() \
        or type(error).__name__ == "OutOfMemoryError"
    if is_oom:
        batch = getattr(settings, "batch_size", None)
        length = getattr(settings, "max_length", None)
        advice = []
        if batch:
            advice.append(f"the batch size (now {batch}; try {max(1, batch // 2)})")
        if length:
            advice.append(f"the max length (now {length}; try {max(32, length // 2)})")
        lower = " or ".join(advice) or "the batch size or the max length"
        return f"ran out of memory: lower {lower}, then start again or resume. ({text.splitlines()[0][:200]})"
    if isinstance(error, LabError):
        return str(error)
    from .todo import NotImplementedYet

    if isinstance(error, NotImplementedYet):
        return f"your code is not finished: {error}"
    where = _learner_line(error)
    return f"{text.splitlines()[0][:400]}" + (f" (at {where})" if where else "")


def _learner_line(error: BaseException) -> str:
    """``lessons/stage3_tokenize.py:88`` when the error came from a lesson file."""
    from .paths import LESSONS_DIR, relative_to_project

    found = ""
    for frame in traceback.extract_tb(error.__traceback__):
        path = Path(frame.filename).resolve()
        if path.parent in (LESSONS_DIR, LESSONS_DIR / "reference") and path.name.startswith("stage"):
            found = f"{relative_to_project(path)}:{frame.lineno}"
    return found


def plain_values(summary: dict) -> dict:
    """The parts of a trainer's summary worth storing: numbers, strings and lists or dicts of them.

    A trainer may hand back the trained model itself (for a caller in the same
    process); its text form is no summary.
    """
    def plain(value: Any) -> bool:
        if value is None or isinstance(value, (bool, int, float, str)):
            return True
        if isinstance(value, (list, tuple)):
            return all(plain(item) for item in value)
        if isinstance(value, dict):
            return all(isinstance(key, str) and plain(item) for key, item in value.items())
        return False

    return {key: (str(value) if isinstance(value, Path) else value) for key, value in summary.items()
            if plain(value) or isinstance(value, Path)}


# -- the job process itself -------------------------------------------------------------------
def run_job(run_id: str, *, store_path: str | None = None, learner: str | None = None,
            resume: bool = False) -> int:
    """What ``python -m lessons.engine.jobs run RUN_ID`` does: train, and record how it ended."""
    quiet_library_notices()  # the job's log is on the stage 4B page: the learner's numbers, not library notices
    store = Store(store_path, learner=learner)
    run = store.run(run_id)
    if run is None:
        print(f"no run {run_id} in {store.path}", file=sys.stderr)
        return 2
    folder = run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return run_in_slot(run_id, "train", store, lambda: _train(run_id, run, store, folder, resume))


def run_in_slot(run_id: str, kind: str, store: Store, work: Callable[[], int]) -> int:
    """Wait in the queue for a slot, mark the run running, ``work()``; the slot is freed however it ends.

    A polite stop (SIGTERM: ``kill``, or ``scancel`` of a Slurm job) becomes a cancel, waiting or working:
    a waiting job leaves the line, a working one stops after its step.
    """
    cancel_file = run_dir(run_id) / CANCEL_NAME
    signal.signal(signal.SIGTERM, lambda *_: cancel_file.write_text("SIGTERM\n"))
    store.update_run(run_id, pid=os.getpid())  # under Slurm, the process on its node
    lease = job_queue.wait_for_slot(run_id, kind, account=store.learner, cancelled=lambda: cancel_requested(run_id))
    if lease is None:
        store.update_run(run_id, status="cancelled", reason="cancelled while queued")
        store.close()
        return 0
    store.update_run(run_id, status="running", pid=os.getpid(), reason="")
    try:
        return work()
    finally:
        ended = (store.run(run_id) or {}).get("status")
        lease.release(ended if ended in job_queue.ENDED else "failed", peak_mb=job_queue.peak_gpu_memory_mb())
        store.close()


def _train(run_id: str, run: dict, store: Store, folder: Path, resume: bool) -> int:
    """The training itself, once the job has its slot; the run's status says how it ended."""
    def should_stop() -> bool:
        return cancel_requested(run_id)

    settings = None
    try:
        module = trainer()
        settings = settings_from_config(run["config"], module.TrainSettings)
        reference = bool((run["config"] or {}).get("reference"))
        load: Callable[[bool], dict] = getattr(module, "load_modules", load_training_modules)
        print(f"[job] run {run_id}: {'reference solutions' if reference else 'your code'}, "
              f"{'resuming' if resume else 'from the start'}; settings {json.dumps(asdict(settings), default=str)}",
              flush=True)
        modules = load(reference)
        extra: dict[str, Any] = {}
        if (run["config"] or {}).get("own_dataset"):
            extra["splits"] = own_dataset_splits(run["config"]["own_dataset"], settings, reference=reference)
        summary = module.run_training(settings, store=store, run_id=run_id, modules=modules, output_dir=folder,
                                      resume=resume, should_stop=should_stop, **extra)
    except KeyboardInterrupt:
        store.update_run(run_id, status="cancelled", reason="interrupted")
        return 1
    except BaseException as error:  # noqa: BLE001 - whatever happened, the run says why it ended
        traceback.print_exc()
        store.update_run(run_id, status="failed", reason=explain_failure(error, settings))
        return 1
    current = store.run(run_id) or {}
    if should_stop():
        steps = max((m["step"] for m in store.metrics(run_id)), default=0)
        store.update_run(run_id, status="cancelled", reason=f"cancelled at step {steps}; resume continues from "
                                                            "the last checkpoint")
    elif current.get("status") not in ("failed", "cancelled"):
        update: dict[str, Any] = {"status": "finished", "reason": ""}
        if isinstance(summary, dict):
            update["summary"] = {**(current.get("summary") or {}), **plain_values(summary)}
        store.update_run(run_id, **update)
    print(f"[job] run {run_id} ended: {store.run(run_id)['status']}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons.engine.jobs",
                                     description="Run one queued training run or evaluation (the dashboard "
                                                 "starts these).")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train the run RUN_ID from the store")
    evaluate = commands.add_parser("evaluate", help="evaluate as the run RUN_ID of the store says (stage 5)")
    for job in (run, evaluate):
        job.add_argument("run_id")
        job.add_argument("--store", default=None, help="the store's database file (default: the lab's)")
        job.add_argument("--learner", default=None,
                         help="whose store rows (default: LAB_LEARNER; in a class, always the account)")
    run.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    status = commands.add_parser("status", help="print a run's status")
    status.add_argument("run_id")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_job(args.run_id, store_path=args.store, learner=args.learner, resume=args.resume)
    if args.command == "evaluate":
        from .evaluation import run_evaluation_job

        return run_evaluation_job(args.run_id, store_path=args.store, learner=args.learner)
    print(json.dumps(job_status(args.run_id), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
