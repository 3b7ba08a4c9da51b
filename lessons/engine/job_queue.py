"""One queue for every training and evaluation job: a few at a time on one GPU server, or Slurm's.

Thirty learners pressing "Start training" at once on one GPU would all run out
of memory together. So every job waits its turn:

* **local** (the default): the queue is a small SQLite file,
  ``$LAB_CLASS_DIR/_queue/queue.sqlite`` in a class (``$LAB_HOME/queue/`` on a
  laptop). Pressing Start takes a *ticket*; the job's own process waits until
  it is first in line and a *slot* is free, then trains. It holds an OS lock
  (``flock``) on its ticket's file and on its slot's file for as long as it
  lives, so a job whose process dies frees its slot that instant: the kernel
  drops the locks, and the next look finds the ticket ``lost``. No daemon runs.
* **slurm**: each job is a batch job (``sbatch``, one GPU each with
  ``--gres=gpu:1``); Slurm's own scheduler decides who runs, ``scancel``
  cancels, ``squeue`` says PENDING or RUNNING. The job writes its metrics to
  the learner's store exactly as a local job does.

How many jobs share a GPU (``slots_per_gpu``): as set, or else as many as fit,
``0.9 × free memory ÷ the peak memory`` of the last jobs that ran here (one
until a job has been measured), and one on a machine without a GPU, where two
trainings would only share the same CPU cores.

The local queue is cooperative, like the GPU itself: an account that can write
the queue can disturb it, and one that ignores it can still start its own
program on the GPU. A class that needs the GPU enforced runs on Slurm.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from .errors import LabError
from .paths import PROJECT_ROOT, lab_home

QUEUE_ENV, SLOTS_ENV, PARTITION_ENV, GRES_ENV = "LAB_QUEUE", "LAB_QUEUE_SLOTS", "LAB_SLURM_PARTITION", "LAB_SLURM_GRES"
BACKENDS = ("local", "slurm")
QUEUE_DIR = "_queue"          # inside the class folder
QUEUE_FILE = "queue.sqlite"
WAITING, RUNNING = "waiting", "running"
ENDED = ("finished", "failed", "cancelled", "lost")
MEMORY_HEADROOM = 0.9         # share of a GPU's free memory the queue plans to fill
ATTACH_GRACE_S = 120          # a ticket whose job process never attached is given up after this
RECENT_JOBS = 20              # tickets the typical duration and the measured peak are taken from
SLURM_ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}


@dataclass
class QueueSettings:
    backend: str = "local"    # where jobs wait: "local" (this machine's queue file) or "slurm" (sbatch)
    slots_per_gpu: int = 0    # jobs sharing one GPU at once; 0: as many as the measured peak memory allows (CPU: 1)
    partition: str = ""       # the Slurm partition jobs go to ("": Slurm's default partition)
    gres: str = "gpu:1"       # what each Slurm job asks for: one GPU ("gpu:1"), or a shard ("shard:1")
    poll_s: float = 0.5       # how often a waiting job looks whether its turn has come


def queue_settings() -> QueueSettings:
    """The class's queue (``class.json``), with ``LAB_QUEUE``, ``LAB_QUEUE_SLOTS``, ``LAB_SLURM_PARTITION`` and
    ``LAB_SLURM_GRES`` overriding it; the local defaults outside a class."""
    from .classroom import active_class

    config = active_class()
    settings = QueueSettings(backend=config.queue, slots_per_gpu=config.slots_per_gpu,
                             partition=config.slurm_partition) if config else QueueSettings()
    settings.backend = os.environ.get(QUEUE_ENV, "").strip().lower() or settings.backend
    if settings.backend not in BACKENDS:
        raise LabError(f"{QUEUE_ENV}={settings.backend!r} is no queue this lab knows: use one of {', '.join(BACKENDS)}.")
    if os.environ.get(SLOTS_ENV, "").strip():
        try:
            settings.slots_per_gpu = int(os.environ[SLOTS_ENV])
        except ValueError:
            raise LabError(f"{SLOTS_ENV}={os.environ[SLOTS_ENV]!r} is not a whole number of jobs per GPU.") from None
    if settings.slots_per_gpu < 0:
        raise LabError(f"slots per GPU must be 0 (measure) or more, not {settings.slots_per_gpu}.")
    settings.partition = os.environ.get(PARTITION_ENV, settings.partition).strip()
    settings.gres = os.environ.get(GRES_ENV, settings.gres).strip()
    return settings


def queue_folder() -> Path:
    """Where the local queue lives: the class's ``_queue/`` folder, or ``$LAB_HOME/queue``."""
    from .classroom import active_class

    config = active_class()
    folder = config.folder / QUEUE_DIR if config else lab_home() / "queue"
    if not folder.is_dir():
        if config:
            raise LabError(f"the class has no queue folder {folder}.\n  fix: the instructor runs "
                           f"`python -m lessons class init {config.folder} --instructors {config.instructors}` again")
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def make_shared_queue(folder: Path) -> None:
    """The class's ``_queue/``: every account makes and removes its journal and lock files there, so it is 0777."""
    folder.mkdir(exist_ok=True)
    os.chmod(folder, 0o777)
    LocalQueue(folder, QueueSettings()).close()
    os.chmod(folder / QUEUE_FILE, 0o666)  # SQLite gives the journal files the database's mode


# -- what the GPUs hold ------------------------------------------------------------------------
def gpu_free_memory_mb() -> list[float]:
    """Free memory of each GPU this process may use, in MB, from ``nvidia-smi`` ([] without a GPU).

    ``nvidia-smi`` rather than torch: asking torch would give every waiting job a CUDA context of its own.
    """
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if done.returncode != 0:
        return []
    free = {}
    for line in done.stdout.splitlines():
        index, _, value = line.partition(",")
        if index.strip().isdigit():
            free[index.strip()] = float(value)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    order = [item.strip() for item in visible.split(",")] if visible else sorted(free, key=int)
    return [free[index] for index in order if index in free]


def slots_for(free_mb: float, peak_mb: float | None, setting: int) -> int:
    """How many jobs one GPU takes at once: ``setting`` when set, else as many measured peaks as fit (at least one).

    >>> slots_for(80_000, 9_000, 0)   # 0.9 × 80 GB ÷ 9 GB
    8
    >>> slots_for(80_000, None, 0)    # nothing measured yet: one at a time
    1
    """
    if setting > 0:
        return setting
    if not peak_mb or peak_mb <= 0:
        return 1
    return max(1, int(MEMORY_HEADROOM * free_mb // peak_mb))


def estimate_wait(running_elapsed: list[float], ahead: int, slots: int, typical_s: float | None) -> float | None:
    """Seconds until a job with ``ahead`` jobs before it in line starts, if jobs take ``typical_s`` each.

    Each slot frees when its job has run ``typical_s``; each job ahead takes the first slot to free.
    None when no job has finished yet (nothing to go by).

    >>> estimate_wait([50.0, 10.0], ahead=1, slots=2, typical_s=60.0)  # frees at 10 s and 50 s; one ahead
    50.0
    """
    if typical_s is None:
        return None
    free_at = sorted([max(0.0, typical_s - elapsed) for elapsed in running_elapsed[:slots]]
                     + [0.0] * max(0, slots - len(running_elapsed)))
    for _ in range(ahead):
        free_at[0] += typical_s
        free_at.sort()
    return free_at[0]


_GPUS_SEEN: list = [0.0, []]  # when this process last asked nvidia-smi, and what it said


# -- the local queue -------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL, account TEXT NOT NULL, kind TEXT NOT NULL,
    state TEXT NOT NULL,               -- waiting | running | finished | failed | cancelled | lost
    slot INTEGER, gpu INTEGER,
    host TEXT NOT NULL, pid INTEGER NOT NULL,
    submitted REAL NOT NULL, started REAL, ended REAL,
    peak_mb REAL,                      -- the job's peak GPU memory, when it used one
    note TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS tickets_by_state ON tickets(state, id);
"""


class Lease:
    """A held slot: the open, locked slot file. ``release`` (or the process's end) frees it."""

    def __init__(self, queue: "LocalQueue | None", ticket: int | None, slot: int | None, gpu: int | None,
                 handle: int | None):
        self.queue, self.ticket, self.slot, self.gpu, self._handle = queue, ticket, slot, gpu, handle

    def release(self, state: str, *, peak_mb: float | None = None, note: str = "") -> None:
        if self.queue is not None and self.ticket is not None:
            self.queue.end(self.ticket, state, peak_mb=peak_mb, note=note)
            self.queue.let_go(self.ticket)
        if self._handle is not None:
            os.close(self._handle)  # closing drops the flock
            self._handle = None


class LocalQueue:
    """The queue file and its slot locks, in ``folder``."""

    def __init__(self, folder: Path | None = None, settings: QueueSettings | None = None):
        self.folder = Path(folder) if folder else queue_folder()
        self.settings = settings or queue_settings()
        self.path = self.folder / QUEUE_FILE
        # isolation_level=None: transactions are the explicit BEGIN IMMEDIATE below, one per decision.
        self._conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.executescript(SCHEMA)
        self._host = socket.gethostname()
        self._held: dict[int, int] = {}  # ticket -> the open, locked descriptor of its file

    def close(self) -> None:
        self._conn.close()

    # -- reading ------------------------------------------------------------------------------
    def tickets(self, *, active_only: bool = False) -> list[dict]:
        where = f"WHERE state IN ('{WAITING}', '{RUNNING}')" if active_only else ""
        return [dict(row) for row in self._conn.execute(f"SELECT * FROM tickets {where} ORDER BY id")]

    def ticket_for(self, run_id: str) -> dict | None:
        row = self._conn.execute("SELECT * FROM tickets WHERE run_id=? ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
        return dict(row) if row else None

    def measured_peak_mb(self) -> float | None:
        peaks = [row[0] for row in self._conn.execute(
            "SELECT peak_mb FROM tickets WHERE peak_mb IS NOT NULL ORDER BY id DESC LIMIT ?", (RECENT_JOBS,))]
        return max(peaks) if peaks else None

    def typical_duration_s(self) -> float | None:
        """The median time the last finished jobs ran (None before the first)."""
        spans = [row[0] for row in self._conn.execute(
            "SELECT ended - started FROM tickets WHERE state='finished' AND started IS NOT NULL "
            "ORDER BY id DESC LIMIT ?", (RECENT_JOBS,))]
        return statistics.median(spans) if spans else None

    def gpu_slots(self) -> list[int]:
        """The GPU of each slot (slot i runs on GPU ``gpu_slots()[i]``); one CPU slot, as GPU -1, without a GPU."""
        checked, free = _GPUS_SEEN
        if time.monotonic() - checked > 30 or not checked:  # free memory changes; nvidia-smi costs ~0.3 s
            free = gpu_free_memory_mb()
            _GPUS_SEEN[:] = [time.monotonic(), free]
        if not free:  # the CPU: one job at a time unless set (two trainings would share the same cores)
            return [-1] * max(1, self.settings.slots_per_gpu)
        peak = self.measured_peak_mb()
        running = [row["gpu"] for row in self.tickets(active_only=True) if row["state"] == RUNNING]
        slots = []
        for gpu, free_mb in enumerate(free):
            # The jobs already running on it are using memory a slot of theirs was planned with.
            planned = free_mb + (peak or 0.0) * running.count(gpu)
            slots += [gpu] * slots_for(planned, peak, self.settings.slots_per_gpu)
        return slots

    def view(self, run_id: str) -> dict:
        """Where the run's job stands: ``state``, ``position`` (1 = next), ``waiting``, ``running``, ``slots``,
        ``wait_s`` (an estimate, or None) and ``typical_s``; ``reap`` first for a view with no dead tickets."""
        mine = self.ticket_for(run_id)
        active = self.tickets(active_only=True)
        waiting = [row for row in active if row["state"] == WAITING]
        running = [row for row in active if row["state"] == RUNNING]
        slots = len(self.gpu_slots())
        typical = self.typical_duration_s()
        view = {"backend": "local", "state": mine["state"] if mine else None, "waiting": len(waiting),
                "running": len(running), "slots": slots, "typical_s": typical, "position": None, "wait_s": None,
                "ticket": mine["id"] if mine else None}
        if mine and mine["state"] == WAITING:
            ahead = sum(1 for row in waiting if row["id"] < mine["id"])
            now = time.time()
            view["position"] = ahead + 1
            view["wait_s"] = estimate_wait([now - row["started"] for row in running], ahead, slots, typical)
        return view

    # -- deciding ----------------------------------------------------------------------------
    def _slot_file(self, slot: int) -> Path:
        return self.folder / f"slot-{slot}.lock"

    def _try_lock(self, slot: int) -> int | None:
        """An open descriptor holding the slot's lock, or None when another process holds it."""
        path = self._slot_file(slot)
        handle = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            os.fchmod(handle, 0o666)  # whoever makes it, every account may lock it
        except PermissionError:
            pass  # someone else's file: its mode is theirs to set, and a read-only open is enough to lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            os.close(handle)
            return None

    def _ticket_file(self, ticket: int) -> Path:
        return self.folder / f"ticket-{ticket}.lock"

    def hold(self, ticket: int) -> None:
        """Lock the ticket's file for as long as this process waits or works: the kernel drops it when we die.

        Made under a temporary name, locked, then renamed, so no one can find it unlocked.
        """
        building = self.folder / f".ticket-{ticket}.{os.getpid()}.new"
        handle = os.open(building, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.fchmod(handle, 0o644)  # whatever the umask: every account's look must be able to open it
        fcntl.flock(handle, fcntl.LOCK_EX)
        os.replace(building, self._ticket_file(ticket))
        self._held[ticket] = handle

    def let_go(self, ticket: int) -> None:
        handle = self._held.pop(ticket, None)
        if handle is not None:
            self._ticket_file(ticket).unlink(missing_ok=True)
            os.close(handle)

    def _gone(self, row: sqlite3.Row) -> bool:
        """Whether the ticket's process has ended, by its ticket file's lock (no need to see its process:
        a server may hide other accounts' processes)."""
        if row["host"] != self._host:
            return False
        try:
            handle = os.open(self._ticket_file(row["id"]), os.O_RDONLY)
        except FileNotFoundError:  # its job process has not taken it yet: give that a while
            return time.time() - row["submitted"] > ATTACH_GRACE_S
        except PermissionError:
            return False  # not ours to judge
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return True  # nobody holds it: its holder has ended
        except BlockingIOError:
            return False
        finally:
            os.close(handle)

    @contextmanager
    def _decision(self):
        """One decision about the line, taken while no other process may write the queue."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def reap(self) -> list[int]:
        """Mark ``lost`` the tickets whose process has ended without saying so; return their ids."""
        with self._decision():
            return self._mark_lost()

    def _mark_lost(self) -> list[int]:
        """Inside a decision: each job's process holds its ticket's file locked, waiting and working; a
        ticket whose lock is free has lost its process (the kernel drops the lock with it)."""
        lost = []
        for row in self._conn.execute("SELECT * FROM tickets WHERE state IN (?, ?)", (WAITING, RUNNING)).fetchall():
            if self._gone(row):
                lost.append(row["id"])
                self._conn.execute("UPDATE tickets SET state='lost', ended=?, note=? WHERE id=?",
                                   (time.time(), "its process ended without a word (killed?)", row["id"]))
        return lost

    def submit(self, run_id: str, kind: str, *, account: str, pid: int = 0) -> int:
        """A ticket for ``run_id``, in line behind every earlier one; return its id.

        The submitter takes it before it starts the job's process (``pid`` 0 until ``attach``), so the
        line is in the order learners pressed Start, not the order their processes happened to start.
        """
        cursor = self._conn.execute(
            "INSERT INTO tickets (run_id, account, kind, state, host, pid, submitted) VALUES (?,?,?,?,?,?,?)",
            (run_id, account, kind, WAITING, self._host, pid, time.time()))
        return int(cursor.lastrowid)

    def attach(self, run_id: str, pid: int) -> int | None:
        """The waiting ticket of ``run_id``, now held by the process ``pid``; None when it has none."""
        row = self._conn.execute("SELECT id FROM tickets WHERE run_id=? AND state=? ORDER BY id DESC LIMIT 1",
                                 (run_id, WAITING)).fetchone()
        if row is None:
            return None
        self._conn.execute("UPDATE tickets SET pid=?, host=? WHERE id=?", (pid, self._host, row["id"]))
        return int(row["id"])

    def try_start(self, ticket: int) -> Lease | None:
        """Take a slot for ``ticket`` if it is next in line and one is free; else None (try again later)."""
        slots = self.gpu_slots()
        with self._decision():
            self._mark_lost()
            active = self._conn.execute("SELECT id, state, slot FROM tickets WHERE state IN (?, ?) ORDER BY id",
                                        (WAITING, RUNNING)).fetchall()
            busy = {row["slot"] for row in active if row["state"] == RUNNING}
            waiting = [row["id"] for row in active if row["state"] == WAITING]
            if ticket not in waiting:
                raise LabError(f"ticket {ticket} is not waiting in {self.path} any more")
            free = [slot for slot in range(len(slots)) if slot not in busy]
            if waiting.index(ticket) >= len(free):  # strictly in line: only the first len(free) may start
                return None
            for slot in free:
                handle = self._try_lock(slot)
                if handle is not None:
                    self._conn.execute("UPDATE tickets SET state=?, slot=?, gpu=?, started=? WHERE id=?",
                                       (RUNNING, slot, slots[slot], time.time(), ticket))
                    return Lease(self, ticket, slot, slots[slot], handle)
            return None

    def end(self, ticket: int, state: str, *, peak_mb: float | None = None, note: str = "") -> None:
        if state not in ENDED:
            raise ValueError(f"a ticket ends {', '.join(ENDED)}, not {state!r}")
        self._conn.execute("UPDATE tickets SET state=?, ended=?, peak_mb=COALESCE(?, peak_mb), note=? WHERE id=?",
                           (state, time.time(), peak_mb, note, ticket))


def wait_for_slot(run_id: str, kind: str, *, account: str, cancelled: Callable[[], bool],
                  say: Callable[[str], None] = lambda text: print(text, flush=True)) -> Lease | None:
    """Queue ``run_id`` and block until it may run; the held slot back, or None when it was cancelled first.

    Inside a Slurm job Slurm has already given this job its GPU, so there is nothing to wait for.
    The slot's GPU becomes ``CUDA_VISIBLE_DEVICES`` (before torch is imported, which is why this comes first).
    """
    if os.environ.get("SLURM_JOB_ID"):
        return Lease(None, None, None, None, None)
    queue = LocalQueue()
    ticket = queue.attach(run_id, os.getpid()) or queue.submit(run_id, kind, account=account, pid=os.getpid())
    queue.hold(ticket)
    said = None
    while True:
        if cancelled():
            queue.end(ticket, "cancelled", note="cancelled while queued")
            queue.let_go(ticket)
            queue.close()
            return None
        lease = queue.try_start(ticket)
        if lease is not None:
            if lease.gpu is not None and lease.gpu >= 0:
                visible = os.environ.get("CUDA_VISIBLE_DEVICES")
                devices = [item.strip() for item in visible.split(",")] if visible else None
                os.environ["CUDA_VISIBLE_DEVICES"] = devices[lease.gpu] if devices else str(lease.gpu)
            say(f"[queue] slot {lease.slot} is yours"
                + (f" (GPU {os.environ['CUDA_VISIBLE_DEVICES']})" if lease.gpu is not None and lease.gpu >= 0 else ""))
            return lease
        view = queue.view(run_id)
        line = f"[queue] waiting: number {view['position']} in line, {view['running']} of {view['slots']} slots busy"
        if line != said:
            say(line)
            said = line
        time.sleep(queue.settings.poll_s)


@contextmanager
def slot(run_id: str, kind: str, *, account: str):
    """Hold one slot for work done in this process (``python -m lessons pipeline``), waiting for it first."""
    if queue_settings().backend == "slurm" and not os.environ.get("SLURM_JOB_ID"):
        print("[queue] the class's jobs go to Slurm: to run this on the cluster's GPUs, start it inside a job "
              "(`srun --gres=gpu:1 …`); here it waits for this machine's own queue.", flush=True)
    lease = wait_for_slot(run_id, kind, account=account, cancelled=lambda: False)
    state = "failed"
    try:
        yield lease
        state = "finished"
    finally:
        lease.release(state, peak_mb=peak_gpu_memory_mb())


def peak_gpu_memory_mb() -> float | None:
    """This process's peak GPU memory so far, when it used a GPU (torch already imported and initialised)."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 1e6
    except Exception:  # noqa: BLE001 - a measurement, never a reason for a job to fail
        return None
    return None


# -- Slurm -------------------------------------------------------------------------------------
def _slurm(*args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)
    except FileNotFoundError:
        raise LabError(f"`{args[0]}` is not installed here, and {QUEUE_ENV}=slurm needs Slurm's commands.\n"
                       f"  fix: run the lab on a Slurm login node, or unset {QUEUE_ENV} for this machine's queue") from None
    if check and done.returncode != 0:
        raise LabError(f"`{' '.join(args)}` failed: {(done.stderr or done.stdout).strip()[:400]}")
    return done


def sbatch_script(command: list[str], *, name: str, log: Path, settings: QueueSettings) -> str:
    """The batch script a job is submitted with (kept in the run's folder, so anyone can read what ran)."""
    lines = ["#!/bin/sh", f"#SBATCH --job-name={name}", f"#SBATCH --output={log}", "#SBATCH --open-mode=append",
             f"#SBATCH --chdir={PROJECT_ROOT}", "#SBATCH --ntasks=1"]
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.gres:
        lines.append(f"#SBATCH --gres={settings.gres}")
    # exec: Slurm's signals (scancel's SIGTERM) reach the job itself, which then stops after its step.
    lines.append("exec " + shlex.join(command))
    return "\n".join(lines) + "\n"


def slurm_submit(command: list[str], *, name: str, folder: Path, log: Path, env: dict,
                 settings: QueueSettings) -> str:
    """Submit ``command`` as a batch job; return Slurm's job id."""
    script = folder / "job.sbatch"
    script.write_text(sbatch_script(command, name=name, log=log, settings=settings), encoding="utf-8")
    done = _slurm("sbatch", "--parsable", str(script), check=False, env=env)
    if done.returncode != 0:
        raise LabError(f"Slurm refused the job: {(done.stderr or done.stdout).strip()[:400]}\n  the script: {script}")
    return done.stdout.strip().split(";")[0]


def slurm_state(job_id: str) -> dict:
    """Slurm's word on a job: ``state`` (PENDING, RUNNING, COMPLETED, CANCELLED, ... or GONE), ``reason``,
    ``position`` among the partition's pending jobs (1 = next), ``start`` (Slurm's expected start, or "")."""
    done = _slurm("squeue", "-h", "-j", job_id, "-o", "%T|%r|%P|%S", check=False)
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    if line:
        state, reason, partition, start = (line.split("|") + ["", "", ""])[:4]
        view = {"state": state, "reason": reason, "start": "" if start in ("N/A", "(null)") else start,
                "position": None}
        if state == "PENDING":
            pending = _slurm("squeue", "-h", "-t", "PENDING", "-p", partition, "-o", "%i", "--sort=-p,i",
                             check=False).stdout.split()
            view["position"] = pending.index(job_id) + 1 if job_id in pending else None
        return view
    shown = _slurm("scontrol", "show", "job", "-o", job_id, check=False)
    for field in shown.stdout.split():
        if field.startswith("JobState="):
            return {"state": field.split("=", 1)[1], "reason": "", "start": "", "position": None}
    return {"state": "GONE", "reason": "", "start": "", "position": None}


def slurm_cancel(job_id: str) -> None:
    """Take a pending job out of Slurm's queue."""
    _slurm("scancel", job_id)


def describe(view: dict) -> str:
    """One line for the page: where a queued job stands.

    >>> describe({"backend": "local", "state": "waiting", "position": 2, "waiting": 3, "running": 2, "slots": 2,
    ...           "wait_s": 95.0, "typical_s": 60.0})
    'number 2 in line (3 waiting, 2 of 2 slots busy); about 2 min to wait'
    """
    if view.get("backend") == "slurm":
        text = f"Slurm job {view.get('job')}: {view.get('state')}"
        if view.get("reason") and view["reason"] not in ("None", "(null)"):
            text += f" ({view['reason']})"
        if view.get("position"):
            text += f", number {view['position']} among the partition's pending jobs"
        if view.get("start"):
            text += (f"; Slurm expects it to start at {view['start']}" if view.get("state") == "PENDING"
                     else f" since {view['start']}")
        return text
    if view.get("state") != WAITING:
        return f"{view.get('running', 0)} of {view.get('slots', 0)} slots busy"
    text = (f"number {view['position']} in line ({view['waiting']} waiting, "
            f"{view['running']} of {view['slots']} slots busy)")
    if view.get("wait_s") is None:
        return text + "; no job has finished here yet, so there is no estimate of the wait"
    minutes = max(1, round(view["wait_s"] / 60))
    return text + f"; about {minutes} min to wait"


def status_lines(queue: LocalQueue, *, limit: int = 40) -> list[str]:
    """The local queue as a table for ``python -m lessons queue``: newest last."""
    queue.reap()
    rows = queue.tickets()[-limit:]
    now = time.time()
    lines = [f"{'ticket':>6}  {'account':<14} {'kind':<9} {'state':<9} {'slot':>4}  {'waited':>7}  {'ran':>7}  run"]
    for row in rows:
        waited = (row["started"] or (row["ended"] if row["state"] in ENDED else now)) - row["submitted"]
        ran = ((row["ended"] or now) - row["started"]) if row["started"] else None
        lines.append(f"{row['id']:>6}  {row['account']:<14} {row['kind']:<9} {row['state']:<9} "
                     f"{'' if row['slot'] is None else row['slot']:>4}  {waited:>6.1f}s  "
                     f"{'' if ran is None else f'{ran:.1f}s':>7}  {row['run_id']}")
    slots = queue.gpu_slots()
    lines.append(f"{len(slots)} slot(s) on " + ("the CPU" if set(slots) == {-1} else f"{len(set(slots))} GPU(s)")
                 + f"; queue file {queue.path}")
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lessons queue", description="The training queue: who waits, "
                                     "who runs, on which slot.")
    parser.add_argument("--limit", type=int, default=40, help="show the newest LIMIT tickets (default 40)")
    args = parser.parse_args(argv)
    settings = queue_settings()
    if settings.backend == "slurm":
        print(f"Jobs go to Slurm ({json.dumps(asdict(settings))}): `squeue -u $USER` lists yours.")
        return 0
    queue = LocalQueue(settings=settings)
    try:
        print("\n".join(status_lines(queue, limit=args.limit)))
    finally:
        queue.close()
    return 0
