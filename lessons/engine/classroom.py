"""A class on a shared server: who is who, where each learner's work goes, who may read it.

The class folder (``python -m lessons class init DIR --instructors GROUP``)::

    DIR/                  root or the instructor, group GROUP, mode 3773: learners may make
                          their own folder in it but not list it; no one removes another's
    DIR/class.json        the class: the instructors' group, the roster, the verifier account
    DIR/_instructors/     group GROUP only (2770): the verifications ``class verify`` records
    DIR/<account>/        made by that learner on first use, 2750: only they write it, the
                          instructors' group reads it (it inherits GROUP from the setgid folder)
        lab.sqlite        their store: check runs, training runs and metrics, evaluations,
                          generations, answers; each write one SQLite transaction
        snapshots/        a read-only copy of each lesson file a complete check run tested,
                          named by stage and content hash: what ``class verify`` re-checks

A learner is their operating-system account, never an environment variable:
``LAB_CLASS_DIR`` says *where* the class is, the kernel says *who* is working.
An instructor (a member of the group, or root) keeps their own store in their
own ``LAB_HOME``, so their runs never appear as a learner's.
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import LabError

CLASS_ENV = "LAB_CLASS_DIR"
CLASS_FILE = "class.json"
INSTRUCTORS_DIR = "_instructors"
SNAPSHOTS_DIR = "snapshots"
STORE_NAME = "lab.sqlite"
DEFAULT_VERIFIER = "lora-kitchen-verify"

CLASS_MODE = 0o3773        # setgid: new folders take the instructors' group; sticky: only an owner removes a folder
LEARNER_MODE = 0o2750      # the learner writes; the instructors' group reads; nobody else enters
INSTRUCTORS_MODE = 0o2770  # the instructors' group only
FILE_MODE = 0o640          # a learner's store: theirs to write, the instructors' to read
SNAPSHOT_MODE = 0o440      # a snapshot is never rewritten: a changed one is a new file

_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


class ClassError(LabError):
    """The class folder, an account or a learner folder is not as a class needs it."""


@dataclass(frozen=True)
class ClassConfig:
    folder: Path                 # the class folder
    instructors: str             # the Unix group whose members (and root) are the class's instructors
    verifier: str = DEFAULT_VERIFIER  # the unprivileged account `class verify` runs learner code as
    roster: tuple[str, ...] = ()      # the learners' accounts; empty: anyone who starts is a learner
    verify_timeout_s: float = 600.0   # wall-clock limit of one stage's verification
    created: float = field(default=0.0, compare=False)  # when `class init` made it (seconds since the epoch)
    queue: str = "local"              # where training jobs wait: "local" (this server's queue) or "slurm"
    slurm_partition: str = ""         # the Slurm partition the class's jobs go to ("": Slurm's default)
    slots_per_gpu: int = 0            # jobs sharing one GPU on a local queue; 0: as many as measured memory allows

    def to_json(self) -> str:
        data = asdict(self)
        data["folder"], data["roster"] = str(self.folder), list(self.roster)
        return json.dumps(data, indent=1)

    @property
    def instructors_dir(self) -> Path:
        return self.folder / INSTRUCTORS_DIR

    @property
    def group_id(self) -> int:
        try:
            return grp.getgrnam(self.instructors).gr_gid
        except KeyError:
            raise ClassError(f"the class's instructors' group {self.instructors!r} does not exist on this machine.\n"
                             f"  fix: `groupadd {self.instructors}` (as root), then add the instructors to it") from None


# -- accounts -------------------------------------------------------------------------------------
def account_name(uid: int | None = None) -> str:
    """The login name of ``uid`` (default: the account this process runs as; not ``$USER``, which anyone can set)."""
    uid = os.geteuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def account_uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def is_instructor(config: ClassConfig, account: str | None = None) -> bool:
    """Root, or a member of the instructors' group (as the system's group database says, not a setting)."""
    account = account or account_name()
    if account_uid(account) == 0:
        return True
    try:
        group = grp.getgrnam(config.instructors)
        primary = pwd.getpwnam(account).pw_gid
    except KeyError:
        return False
    return account in group.gr_mem or primary == group.gr_gid


# -- the class folder -----------------------------------------------------------------------------
def init_class(folder: str | Path, instructors: str, *, roster: list[str] | None = None,
               verifier: str = DEFAULT_VERIFIER, verify_timeout_s: float = 600.0, queue: str = "local",
               slurm_partition: str = "", slots_per_gpu: int = 0) -> ClassConfig:
    """Make (or bring back to shape) the class folder; return its configuration.

    Run by root or by an instructor (a member of ``instructors``). Learners' folders
    are not made here: each learner's lab makes theirs on first use, so it is theirs.
    The training queue's folder ``_queue/`` is made here (``job_queue.make_shared_queue``).
    """
    from .job_queue import BACKENDS, QUEUE_DIR, make_shared_queue

    folder = Path(folder).resolve()
    if queue not in BACKENDS:
        raise ClassError(f"the queue {queue!r} is none this lab knows: use one of {', '.join(BACKENDS)}")
    config = ClassConfig(folder, instructors, verifier, tuple(roster or ()), verify_timeout_s, time.time(),
                         queue, slurm_partition, int(slots_per_gpu))
    gid = config.group_id
    if not is_instructor(config):
        raise ClassError(f"you ({account_name()}) are not in the group {instructors!r}: only root or an instructor "
                         "makes a class folder.\n  fix: `usermod -aG {instructors} {account_name()}`, log in again")
    for name in config.roster:
        if account_uid(name) is None:
            raise ClassError(f"the roster names {name!r}, which is no account on this machine.\n"
                             "  fix: create the account, or correct the roster (one login name per line)")
    folder.mkdir(parents=True, exist_ok=True)
    os.chown(folder, -1, gid)
    os.chmod(folder, CLASS_MODE)
    config.instructors_dir.mkdir(exist_ok=True)
    os.chown(config.instructors_dir, -1, gid)
    os.chmod(config.instructors_dir, INSTRUCTORS_MODE)
    make_shared_queue(folder / QUEUE_DIR)
    _write_atomically(folder / CLASS_FILE, config.to_json().encode(), mode=0o644)
    return config


def read_roster(path: str | Path) -> list[str]:
    """Login names from a file: one per line, or the first column of a CSV; ``#`` starts a comment."""
    names = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        name = line.split("#", 1)[0].split(",", 1)[0].strip()
        if not name or (number == 1 and name.lower() in {"login", "account", "user", "learner"}):
            continue
        if not _ACCOUNT.match(name):
            raise ClassError(f"{path}, line {number}: {name!r} is not a login name.\n"
                             "  fix: one login name per line (letters, digits, _ . -), or a CSV whose first column is one")
        names.append(name)
    return names


def load_class(folder: str | Path) -> ClassConfig:
    folder = Path(folder)
    path = folder / CLASS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClassError(f"{folder} is not a class folder (it has no {CLASS_FILE}).\n"
                         f"  fix: the instructor runs `python -m lessons class init {folder} --instructors GROUP`") from None
    except (OSError, ValueError) as error:
        raise ClassError(f"cannot read {path}: {error}") from None
    return ClassConfig(folder.resolve(), data["instructors"], data.get("verifier", DEFAULT_VERIFIER),
                       tuple(data.get("roster", ())), float(data.get("verify_timeout_s", 600.0)),
                       float(data.get("created", 0.0)), data.get("queue", "local"), data.get("slurm_partition", ""),
                       int(data.get("slots_per_gpu", 0)))


def active_class() -> ClassConfig | None:
    """The class named by ``LAB_CLASS_DIR``, or None when this lab is not in a class."""
    folder = os.environ.get(CLASS_ENV, "").strip()
    return load_class(folder) if folder else None


def class_folder_problem(config: ClassConfig) -> str:
    """What is wrong with the class folder's owner, group or mode, in words ("" when nothing)."""
    info = config.folder.stat()
    problems = []
    if info.st_gid != config.group_id:
        problems.append(f"its group is {_group_name(info.st_gid)}, not {config.instructors}")
    if stat.S_IMODE(info.st_mode) != CLASS_MODE:
        problems.append(f"its mode is {stat.S_IMODE(info.st_mode):o}, not {CLASS_MODE:o}")
    if info.st_uid != 0 and not is_instructor(config, account_name(info.st_uid)):
        problems.append(f"it belongs to {account_name(info.st_uid)}, who is not an instructor")
    return "; ".join(problems)


# -- learners' folders ----------------------------------------------------------------------------
def learner_folder_problem(config: ClassConfig, name: str, path: Path) -> str:
    """Why ``path`` cannot be trusted as the learner ``name``'s folder ("" when it can)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return "it does not exist"
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    uid = account_uid(name)
    if uid is None:
        return f"there is no account {name!r} on this machine"
    if info.st_uid != uid:
        return f"it belongs to {account_name(info.st_uid)}, not to {name}"
    if info.st_gid != config.group_id:
        return f"its group is {_group_name(info.st_gid)}, not {config.instructors}"
    if stat.S_IMODE(info.st_mode) != LEARNER_MODE:
        return f"its mode is {stat.S_IMODE(info.st_mode):o}, not {LEARNER_MODE:o}"
    return ""


def learner_folder(config: ClassConfig, *, create: bool = True) -> Path:
    """This account's folder in the class, made on first use, with its owner, group and mode checked."""
    me = account_name()
    if is_instructor(config, me):
        raise ClassError(f"{me} is an instructor of this class: an instructor's own work stays in their LAB_HOME.")
    if config.roster and me not in config.roster:
        raise ClassError(f"you ({me}) are not on the roster of the class in {config.folder}.\n"
                         "  fix: ask your instructor to add your login name to the roster")
    path = config.folder / me
    if create and not path.exists():
        problem = class_folder_problem(config)
        if problem:
            raise ClassError(f"the class folder {config.folder} is not set up for learners: {problem}.\n"
                             f"  fix: the instructor runs `python -m lessons class init {config.folder} "
                             f"--instructors {config.instructors}` again")
        _make_folder(path)
    problem = learner_folder_problem(config, me, path)
    if problem:
        raise ClassError(f"your class folder {path} cannot be used: {problem}. Nothing was written.\n"
                         "  fix: ask your instructor to remove it; your lab makes it again, as yours, on next use")
    return path


def learner_folders(config: ClassConfig) -> list[tuple[str, Path, str]]:
    """(account, folder, problem) for every learner folder, roster learners without one included.

    Read by an instructor: a folder whose owner is not the account it is named after
    is listed with its problem, and never read as that learner's.
    """
    names = set(config.roster)
    for child in config.folder.iterdir():
        if child.name.startswith(("_", ".")) or child.name == CLASS_FILE:
            continue
        names.add(child.name)
    return [(name, config.folder / name, learner_folder_problem(config, name, config.folder / name))
            for name in sorted(names)]


# -- publishing -----------------------------------------------------------------------------------
def store_path_in_class(config: ClassConfig) -> Path:
    return learner_folder(config) / STORE_NAME


def snapshot_path(folder: Path, stage: str, file_hash: str) -> Path:
    return folder / SNAPSHOTS_DIR / f"{stage}-{file_hash}.py"


def publish_snapshot(config: ClassConfig, stage: str, content: bytes, file_hash: str) -> Path:
    """Keep a read-only copy of the lesson file a complete check run tested, named by its hash."""
    folder = learner_folder(config)
    snapshots = folder / SNAPSHOTS_DIR
    if not snapshots.exists():
        _make_folder(snapshots)
    path = snapshot_path(folder, stage, file_hash)
    if not path.exists():
        _write_atomically(path, content, mode=SNAPSHOT_MODE)
    return path


def _make_folder(path: Path) -> None:
    """A 2750 folder inside a setgid one: it takes the instructors' group and keeps the setgid bit.

    Not by chmod: a learner is not in the instructors' group, and the kernel drops the
    setgid bit of a folder whose group its owner is not in on every chmod they make.
    """
    previous = os.umask(0o027)
    try:
        path.mkdir(mode=0o750)
    except FileExistsError:
        pass
    finally:
        os.umask(previous)


def _write_atomically(path: Path, content: bytes, *, mode: int) -> None:
    """Write under a temporary name, then rename: a reader finds the old file or the whole new one."""
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(partial, mode)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
