"""Verified progress: a learner's "passed" re-checked by the class, not taken on their word.

A learner's store is theirs to write, so a pass it holds is *self-reported*.
``python -m lessons class verify`` re-runs the stage's checks on the snapshot
that the learner's complete check run published (``classroom.py``):

* on a copy of the snapshot, hashed again after copying: a file the learner can
  still change is never what runs, and a snapshot that no longer matches the
  hash its run recorded is *snapshot changed*;
* with this project's own check files (never the learner's copy of ``checks/``,
  never a ``conftest.py`` of theirs: their checkout is not used at all);
* as the verifier account, neither instructor nor learner, inside a network and
  mount namespace: no network, the world-writable folders read-only, only a
  fresh work folder writable, a wall-clock limit, every process it started
  killed when it ends;
* its result goes to the instructors' own store, ``_instructors/verification.sqlite``,
  which no learner can write.

Each stage of each learner then reads as one of ``STATES``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .classroom import ClassConfig, ClassError, account_uid, is_instructor, learner_folders, snapshot_path
from .errors import LabError
from .paths import CHECKS_DIR, PROJECT_ROOT
from .progress import run_passes_stage
from .registry import stage_checks
from .stages import STAGES, STAGES_BY_KEY, content_hash

VERIFIED = "verified"
SELF_REPORTED = "self-reported only"
VERIFICATION_FAILED = "verification failed"
SNAPSHOT_CHANGED = "snapshot changed"
FAILING = "failing"
NOT_STARTED = "not started"
STATES = (VERIFIED, SELF_REPORTED, VERIFICATION_FAILED, SNAPSHOT_CHANGED, FAILING, NOT_STARTED)
MARKS = {VERIFIED: "✔", SELF_REPORTED: "~", VERIFICATION_FAILED: "✘", SNAPSHOT_CHANGED: "≠",
         FAILING: "✗", NOT_STARTED: "·"}
VERIFICATIONS_FILE = "verification.sqlite"
WORK_DIR = "_verify"  # under the class folder: root's, enterable (0711) but not listable by others


@dataclass
class StageMark:
    stage: str                 # the stage's key, e.g. "stage3"
    state: str                 # one of STATES
    passed: int = 0            # checks passed in the learner's newest complete run
    total: int = 0             # checks the stage has
    file_hash: str = ""        # the hash of the file that run tested
    detail: str = ""           # why, in words (what failed, what changed)


@dataclass
class LearnerMarks:
    learner: str
    folder: Path
    problem: str = ""                                        # why the folder is not trusted ("" when it is)
    marks: dict[str, StageMark] = field(default_factory=dict)  # stage key -> mark

    @property
    def verified_count(self) -> int:
        return sum(mark.state == VERIFIED for mark in self.marks.values())


# -- the instructors' store of verifications -----------------------------------------------------
def checks_fingerprint(stage_key: str) -> str:
    """A hash of what judges a stage: its check files, the harness, the registry. New checks mean a new verification."""
    digest = hashlib.sha256()
    files = sorted(CHECKS_DIR.glob("*.py")) + sorted((CHECKS_DIR / stage_key).glob("*.py"))
    for path in files + [CHECKS_DIR / "registry.json"]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _verifications(config: ClassConfig, *, write: bool) -> sqlite3.Connection | None:
    path = config.instructors_dir / VERIFICATIONS_FILE
    if not write and not path.exists():
        return None
    conn = sqlite3.connect(path if write else f"file:{path}?mode=ro", uri=not write, timeout=30)
    if write:
        conn.execute("CREATE TABLE IF NOT EXISTS verifications (learner TEXT NOT NULL, stage TEXT NOT NULL,"
                     " file_hash TEXT NOT NULL, checks_hash TEXT NOT NULL, outcome TEXT NOT NULL,"
                     " passed INTEGER NOT NULL, total INTEGER NOT NULL, detail TEXT NOT NULL, created REAL NOT NULL)")
        conn.commit()
        os.chmod(path, 0o660)
        os.chown(path, -1, config.group_id)
    return conn


def recorded_verification(conn: sqlite3.Connection | None, learner: str, stage: str, file_hash: str) -> dict | None:
    if conn is None:
        return None
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM verifications WHERE learner=? AND stage=? AND file_hash=? AND checks_hash=?"
                       " ORDER BY created DESC LIMIT 1",
                       (learner, stage, file_hash, checks_fingerprint(stage))).fetchone()
    return dict(row) if row else None


# -- marks: what each stage of each learner reads as -----------------------------------------------
def learner_marks(config: ClassConfig, learner: str, folder: Path, problem: str = "",
                  conn: sqlite3.Connection | None = None) -> LearnerMarks:
    """One learner's mark per stage, read-only: their store, their snapshots, the instructors' verifications."""
    from .store import Store

    result = LearnerMarks(learner, folder, problem)
    store_file = folder / "lab.sqlite"
    if problem or not store_file.exists():
        result.marks = {stage.key: StageMark(stage.key, NOT_STARTED, total=len(stage_checks(stage.key)))
                        for stage in STAGES}
        return result
    with Store(store_file, read_only=True, learner=learner) as store:
        for stage in STAGES:
            total = len(stage_checks(stage.key))
            run = store.latest_check_run(stage.key, complete_only=True) or store.latest_check_run(stage.key)
            if run is None:
                result.marks[stage.key] = StageMark(stage.key, NOT_STARTED, total=total)
                continue
            mark = StageMark(stage.key, FAILING, run["passed"], total, run["file_hash"])
            result.marks[stage.key] = mark
            if not run_passes_stage(run):
                continue
            mark.state, mark.detail = _claimed_pass(conn, learner, folder, stage.key, run["file_hash"])
    return result


def _claimed_pass(conn, learner: str, folder: Path, stage: str, file_hash: str) -> tuple[str, str]:
    snapshot = snapshot_path(folder, stage, file_hash)
    try:
        content = snapshot.read_bytes()
    except FileNotFoundError:
        return SELF_REPORTED, "no snapshot of the file it names: the pass was not recorded by a check run in this class"
    if content_hash(content) != file_hash:
        return SNAPSHOT_CHANGED, f"{snapshot.name} no longer has the content its check run tested"
    found = recorded_verification(conn, learner, stage, file_hash)
    if found is None:
        return SELF_REPORTED, "not verified yet: run `python -m lessons class verify`"
    if found["outcome"] == "passed":
        return VERIFIED, f"{found['passed']}/{found['total']} checks passed when re-run"
    return VERIFICATION_FAILED, found["detail"]


def class_marks(config: ClassConfig, learner: str | None = None) -> list[LearnerMarks]:
    """Every learner's marks (or one learner's), with folders that cannot be trusted listed, not read."""
    conn = _verifications(config, write=False)
    try:
        return [_marks_or_problem(config, name, folder, problem, conn)
                for name, folder, problem in learner_folders(config) if learner is None or name == learner]
    finally:
        if conn is not None:
            conn.close()


def _marks_or_problem(config: ClassConfig, name: str, folder: Path, problem: str, conn) -> LearnerMarks:
    """A learner's marks; a store that cannot be read (damaged, mid-repair) is that learner's problem, not the class's."""
    try:
        return learner_marks(config, name, folder, problem, conn)
    except (LabError, sqlite3.Error, OSError) as error:
        return learner_marks(config, name, folder, f"its store cannot be read: {error}".splitlines()[0], conn)


def record_verification(config: ClassConfig, learner: str, stage: str, file_hash: str, verdict: dict) -> None:
    """Keep one verdict of ``run_checks_sandboxed`` in the instructors' store."""
    conn = _verifications(config, write=True)
    try:
        with conn:
            conn.execute("INSERT INTO verifications VALUES (?,?,?,?,?,?,?,?,?)",
                         (learner, stage, file_hash, checks_fingerprint(stage), verdict["outcome"],
                          verdict["passed"], verdict["total"], verdict["detail"], time.time()))
    finally:
        conn.close()


def status_rows(marks: list[LearnerMarks]) -> list[dict]:
    """One row per learner: the state of each stage, for ``class status`` and the report's CSV."""
    rows = []
    for learner in marks:
        row = {"learner": learner.learner, "verified": learner.verified_count}
        for stage in STAGES:
            row[stage.label] = learner.marks[stage.key].state
        row["problem"] = learner.problem
        rows.append(row)
    return rows


def status_table(marks: list[LearnerMarks]) -> str:
    """The learner × stage table ``class status`` prints, with a legend."""
    width = max([len("learner")] + [len(learner.learner) for learner in marks])
    lines = ["learner".ljust(width) + "  " + "  ".join(stage.label.rjust(2) for stage in STAGES) + "  verified"]
    for learner in marks:
        cells = "  ".join(MARKS[learner.marks[stage.key].state].rjust(2) for stage in STAGES)
        line = f"{learner.learner.ljust(width)}  {cells}  {learner.verified_count}/{len(STAGES)}"
        lines.append(line + (f"   ({learner.problem})" if learner.problem else ""))
    lines.append("")
    lines.append("   ".join(f"{MARKS[state]} {state}" for state in STATES))
    return "\n".join(lines)


# -- verification: re-running the checks on a snapshot -------------------------------------------
SANDBOX_SCRIPT = r"""
set -e
work="$1"; shift
mount --bind "$work" "$work"
for folder in /tmp /var/tmp /dev/shm /run/lock; do
  if [ -d "$folder" ]; then mount --rbind "$folder" "$folder"; mount -o remount,bind,ro "$folder"; fi
done
exec "$@"
"""


def _verifier_ids(config: ClassConfig) -> tuple[int, int]:
    uid = account_uid(config.verifier)
    if uid is None:
        raise ClassError(f"the verifier account {config.verifier!r} does not exist.\n  fix (as root): "
                         f"`useradd --system --no-create-home --shell /usr/sbin/nologin {config.verifier}`")
    import pwd

    entry = pwd.getpwuid(uid)
    if uid == 0 or entry.pw_name == os.environ.get("SUDO_USER") or is_instructor(config, entry.pw_name) \
            or (config.folder / entry.pw_name).exists():
        raise ClassError(f"the verifier account {config.verifier!r} must be an account of its own: not root, "
                         "not an instructor, not a learner of the class")
    return uid, entry.pw_gid


def _python_runnable_by_others() -> None:
    """The verifier runs this project's Python: a folder above it that other accounts cannot enter stops it."""
    for path in [Path(sys.executable), *Path(sys.executable).parents, *Path(os.path.realpath(sys.executable)).parents]:
        if path.is_dir() and not path.stat().st_mode & 0o001:
            raise ClassError(f"the verifier account cannot run {sys.executable}: other accounts cannot enter {path}.\n"
                             "  fix: on a class server, install the project and its Python where every account can "
                             f"read them (e.g. /opt/lora-kitchen), or `chmod o+x {path}`")


def _model_cache_for_verifier(config: ClassConfig) -> Path:
    """The lab's model, copied once where the verifier can read it (the instructor's LAB_HOME may be private)."""
    from .assets import DEFAULT_MODEL_NAME, ensure_model_cache

    target = config.folder / WORK_DIR / "models" / DEFAULT_MODEL_NAME
    if not (target / "model.safetensors").exists():
        source = ensure_model_cache()
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        for path in [partial, *partial.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.replace(partial, target)
        os.chmod(target.parent, 0o755)
    return target.parent


def run_checks_sandboxed(config: ClassConfig, stage_key: str, content: bytes, *, label: str = "") -> dict:
    """Run the project's checks of ``stage_key`` on ``content`` (a lesson file) as the verifier, sandboxed.

    Returns ``{"outcome": "passed"|"failed", "passed": n, "total": n, "detail": words}``.
    Needs root: only root can switch to the verifier account and cut the network.
    """
    if os.geteuid() != 0:
        raise ClassError("class verify runs learner code as the verifier account, with no network: that needs root.\n"
                         "  fix: `sudo .venv/bin/python -m lessons class verify ...` (the results go to the "
                         "instructors' store in the class folder)")
    uid, gid = _verifier_ids(config)
    _python_runnable_by_others()
    stage = STAGES_BY_KEY[stage_key]
    names = stage_checks(stage_key)
    base = config.folder / WORK_DIR
    base.mkdir(exist_ok=True)
    os.chmod(base, 0o711)
    models = _model_cache_for_verifier(config)
    work = Path(tempfile.mkdtemp(prefix=f"{label or stage_key}-", dir=base))
    try:
        lesson = work / stage.learner_file.name
        lesson.write_bytes(content)
        (work / "lab").mkdir()
        (work / "lab" / "models").symlink_to(models)
        for path in [work, lesson, work / "lab"]:
            os.chown(path, uid, gid, follow_symlinks=False)
        os.chmod(work, 0o700)
        report = work / "report.json"
        environment = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LAB_HOME": str(work / "lab"),
                       "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1"}
        command = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--",
                   "sh", "-c", SANDBOX_SCRIPT, "sandbox", str(work),
                   "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--no-new-privs", "--",
                   "env", "-i", *[f"{key}={value}" for key, value in environment.items()],
                   sys.executable, "-m", "pytest", str(stage.checks_dir), "--lesson-file", str(lesson),
                   "--no-record", "--report-json", str(report), "-p", "no:cacheprovider", "-q",
                   "--rootdir", str(PROJECT_ROOT)]
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            output, _ = process.communicate(timeout=config.verify_timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return {"outcome": "failed", "passed": 0, "total": len(names),
                    "detail": f"the checks did not finish within {config.verify_timeout_s:.0f} s"}
        return _read_report(report, names, process.returncode, output.decode(errors="replace"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read_report(report: Path, names: tuple[str, ...], returncode: int, output: str) -> dict:
    """The verdict: every check of the stage's registry passed, and the harness ended cleanly."""
    try:
        results = next(iter(json.loads(report.read_text()).values()), {})
    except (OSError, ValueError, StopIteration):
        results = {}
    passed = sum(results.get(name, {}).get("outcome") == "passed" for name in names)
    if returncode == 0 and passed == len(names):
        return {"outcome": "passed", "passed": passed, "total": len(names), "detail": ""}
    failing = [name for name in names if results.get(name, {}).get("outcome") != "passed"]
    if not results:
        tail = output.strip().splitlines()[-3:]
        detail = "the checks wrote no results (exit status %d): %s" % (returncode, " / ".join(tail)[-300:])
    else:
        first = results.get(failing[0], {}) if failing else {}
        message = (first.get("message") or "").strip().splitlines()
        detail = (f"{len(failing)} of {len(names)} checks did not pass when re-run, first {failing[0]}"
                  + (f": {message[0][:200]}" if message else "")) if failing else \
            f"the checks ended with exit status {returncode}"
    return {"outcome": "failed", "passed": passed, "total": len(names), "detail": detail}


def verify(config: ClassConfig, learner: str | None = None, *, log: Callable[[str], None] = print) -> list[LearnerMarks]:
    """Re-check every self-reported pass (of one learner, or everyone) and record each verdict; return the marks."""
    conn = _verifications(config, write=True)
    try:
        for name, folder, problem in learner_folders(config):
            if learner is not None and name != learner:
                continue
            if problem:
                log(f"{name}: not read ({problem})")
                continue
            marks = learner_marks(config, name, folder, problem, conn)
            for mark in marks.marks.values():
                if mark.state != SELF_REPORTED or mark.detail.startswith("no snapshot"):
                    continue
                content = snapshot_path(folder, mark.stage, mark.file_hash).read_bytes()
                if content_hash(content) != mark.file_hash:  # changed since it was read a moment ago
                    continue
                started = time.perf_counter()
                log(f"{name}: verifying stage {STAGES_BY_KEY[mark.stage].label} …")
                verdict = run_checks_sandboxed(config, mark.stage, content, label=f"{name}-{mark.stage}")
                record_verification(config, name, mark.stage, mark.file_hash, verdict)
                log(f"{name}: stage {STAGES_BY_KEY[mark.stage].label} {verdict['outcome']} "
                    f"({verdict['passed']}/{verdict['total']}, {time.perf_counter() - started:.0f} s)"
                    + (f": {verdict['detail']}" if verdict["detail"] else ""))
    finally:
        conn.close()
    found = class_marks(config, learner)
    if learner is not None and not found:
        raise ClassError(f"there is no learner {learner!r} in {config.folder}")
    return found
