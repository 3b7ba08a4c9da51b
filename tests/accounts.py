"""Real Unix accounts for the classroom tests (CI runs as root, so it may make them).

Each test makes its own accounts under a prefix of its own and removes them
afterwards; a lock file keeps parallel test workers from editing
``/etc/passwd`` at the same moment (``useradd`` refuses while another holds it).
"""
from __future__ import annotations

import fcntl
import grp
import os
import pwd
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

_LOCK = Path("/tmp/lora-kitchen-tests-accounts.lock")


def need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("makes Unix accounts: runs as root (as CI does)")
    _interpreter_reachable()


def _interpreter_reachable() -> None:
    """Let other accounts enter (not list) the folders above this Python, as on a shared server.

    The project's Python may sit under root's home (pyenv); a class server's Python must be
    runnable by every learner, so the tests make it so: ``o+x`` on each folder above it.
    """
    import stat
    import sys

    for folder in Path(os.path.realpath(sys.executable)).parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)


@contextmanager
def _passwd_lock() -> Iterator[None]:
    with open(_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def unique_prefix(letters: str) -> str:
    """A short prefix no other test worker uses: account names stay under 32 characters."""
    return f"{letters}{uuid.uuid4().hex[:5]}"


@contextmanager
def accounts(prefix: str, count: int, *, group: str | None = None, members: int = 0) -> Iterator[list[str]]:
    """``count`` accounts named ``<prefix>NN``; with ``group``, that group is made and the first ``members`` join it."""
    need_root()
    names = [f"{prefix}{number:02d}" for number in range(count)]
    with _passwd_lock():
        if group:
            subprocess.run(["groupadd", group], check=True)
        for index, name in enumerate(names):
            command = ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name]
            if group and index < members:
                command[1:1] = ["--groups", group]
            subprocess.run(command, check=True)
    try:
        yield names
    finally:
        with _passwd_lock():
            for name in names:
                subprocess.run(["userdel", name], check=False, capture_output=True)
            if group:
                subprocess.run(["groupdel", group], check=False, capture_output=True)


def _identity(account: str) -> dict:
    """What ``subprocess`` needs to run as ``account``: its user, its primary group and only its own groups."""
    user = pwd.getpwnam(account)
    groups = [g.gr_gid for g in grp.getgrall() if account in g.gr_mem]
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": groups}


def run_as(account: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``command`` as ``account``, with the caller's environment unless ``env`` is given."""
    return subprocess.run(command, **_identity(account), **kwargs)


def popen_as(account: str, command: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen(command, **_identity(account), **kwargs)


@contextmanager
def shared_folder(name: str) -> Iterator[Path]:
    """A folder other accounts can enter (pytest's ``tmp_path`` sits under a root-only 0700 folder)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix=f"lk-{name}-", dir="/tmp"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def private_home(parent: Path, account: str) -> Path:
    """A LAB_HOME of the account's own, inside ``parent`` (a ``shared_folder``)."""
    home = parent / f"home-{account}"
    home.mkdir(mode=0o700)
    user = pwd.getpwnam(account)
    os.chown(home, user.pw_uid, user.pw_gid)
    return home
