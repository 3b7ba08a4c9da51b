"""The store's file: made whole or not at all, checked when opened, backed up, repaired on request.

* **Creation is atomic.** A new store is built under a temporary name (WAL mode,
  every table, the schema version) and linked into place in one step, so thirty
  processes opening a store that does not exist yet all find either no file or
  a complete one: no ``database is locked`` at ``PRAGMA journal_mode``, no
  ``no such table`` for a reader.
* **Migrations are ordered.** ``PRAGMA user_version`` is the schema version;
  an older store is brought up to date step by step, inside one immediate
  transaction (which waits for the busy timeout, unlike a journal-mode change).
* **A reader gets past a killed writer.** A learner's process killed in the middle
  of a write leaves a hot journal in a class store (a rollback journal), which
  only a process that may write the store can roll back; the instructor may only
  read it. Such a reader copies the store and its journal into a private folder,
  lets SQLite roll the copy back, and reads the last commit from there; the
  learner's files stay as they are until the learner's next open rolls them back.
* **A damaged store is said, not crashed on.** Each process checks a store once
  (``PRAGMA quick_check``) and any later "malformed" error is turned into
  ``StoreDamaged``, whose message says what to run.
* **A backup to restore from.** A writable open refreshes ``lab.sqlite.backup``
  (SQLite's online backup) when it is older than ``BACKUP_EVERY_S``;
  ``python -m lessons repair-store`` moves the damaged file aside (never
  deletes it) and restores the backup, or starts a fresh store if there is none.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable

from .errors import LabError

BACKUP_EVERY_S = 600.0  # a crash loses at most this much of what the backup holds (the damaged file is kept too)
BUSY_TIMEOUT_S = 30.0
_checked: set[Path] = set()  # stores this process has found sound


class StoreDamaged(LabError):
    """The store's file cannot be read as a database."""

    def __init__(self, path: Path, cause: str):
        self.path, self.cause = path, cause
        backup = backup_path(path)
        then = (f"restores the backup of {time.strftime('%Y-%m-%d %H:%M', time.localtime(backup.stat().st_mtime))}"
                if backup.exists() else "starts a fresh store (there is no backup yet)")
        super().__init__(
            f"the lab's store {path} is damaged ({cause}). Nothing has been changed.\n"
            f"  what to do: run `python -m lessons repair-store`: it moves the damaged file aside, keeping it, "
            f"and {then}.\n  why it happens: the disk filled up, or the file was copied or cut while in use.")


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def is_damage(error: sqlite3.DatabaseError) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("malformed", "not a database", "file is encrypted", "disk i/o error"))


def connect(path: Path, *, read_only: bool, migrations: list[Callable[[sqlite3.Connection], None]],
            shared: bool = False) -> sqlite3.Connection:
    """An open connection to a sound store at ``path`` (created if missing and not ``read_only``).

    ``shared``: a store in a class folder, which others read without write access
    to its folder: made with a rollback journal (WAL readers must write a -shm file)
    and group-readable.
    """
    if not read_only and not path.exists():
        _create(path, migrations, shared=shared)
    if path.exists() and path.stat().st_size == 0:
        raise StoreDamaged(path, "the file is empty")  # a store is never created empty, so it was cut
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        if read_only and _left_mid_write(conn):
            conn.close()
            conn = last_commit_copy(path)
        if path not in _checked:
            found = conn.execute("PRAGMA quick_check").fetchone()[0]
            if found != "ok":
                conn.close()
                raise StoreDamaged(path, found)
            _checked.add(path)
        if not read_only:
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process
            _migrate(conn, migrations)
            _refresh_backup(conn, path)
    except sqlite3.DatabaseError as error:
        if is_damage(error):
            raise StoreDamaged(path, str(error)) from None
        raise
    return conn


def _left_mid_write(conn: sqlite3.Connection) -> bool:
    """True when a killed writer left a hot journal that this read-only connection may not roll back."""
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the first read looks for a hot journal
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_ROLLBACK:
            return True
        raise
    return False


def last_commit_copy(path: Path, *, tries: int = 5) -> sqlite3.Connection:
    """A read-only connection to ``path`` as of its last commit, for a reader that may not roll back its hot journal.

    The journal, then the store, are copied into a private folder; SQLite rolls the copy back, and the result
    is read into memory. A copy taken while the owner was rolling back (either file changed meanwhile) is
    taken again; a journal gone means the owner already rolled back, and the store is read as it is.
    """
    journal = path.with_name(path.name + "-journal")
    for _ in range(tries):
        before = _file_marks(path, journal)
        if before is None:
            return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        with tempfile.TemporaryDirectory(prefix="lab-store-") as private:
            copy = Path(private) / path.name
            shutil.copyfile(journal, copy.with_name(journal.name))
            shutil.copyfile(path, copy)
            if _file_marks(path, journal) != before:
                continue
            rolled_back = sqlite3.connect(copy)
            try:
                memory = sqlite3.connect(":memory:", check_same_thread=False)
                rolled_back.backup(memory)  # its first read rolls the copy's hot journal back
            finally:
                rolled_back.close()
        memory.execute("PRAGMA query_only=ON")  # a reader's view: a write would vanish with it, so none is taken
        return memory
    raise sqlite3.OperationalError(f"{path} kept changing while it was copied to be read: try again in a moment")


def _file_marks(path: Path, journal: Path) -> tuple | None:
    """Size and change time of the store and its journal; None when the journal is gone."""
    try:
        return tuple((stat.st_size, stat.st_mtime_ns) for stat in (path.stat(), journal.stat()))
    except FileNotFoundError:
        return None


def _create(path: Path, migrations, *, shared: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.new")
    conn = sqlite3.connect(building)
    try:
        # WAL is kept in the file: every later connection is WAL too. A shared store keeps the default journal.
        conn.execute("PRAGMA journal_mode=" + ("DELETE" if shared else "WAL"))
        _migrate(conn, migrations)
    finally:
        conn.close()
    if shared:
        os.chmod(building, 0o640)
    try:
        os.link(building, path)  # atomic, and never over a store another process linked first
    except FileExistsError:
        pass
    finally:
        building.unlink(missing_ok=True)


def _migrate(conn: sqlite3.Connection, migrations) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(migrations):
        return
    conn.isolation_level = None
    try:
        conn.execute("BEGIN IMMEDIATE")  # waits for the busy timeout; one process migrates, the others then see it done
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, len(migrations)):
            migrations[number](conn)
        conn.execute(f"PRAGMA user_version={len(migrations)}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.isolation_level = ""


def _refresh_backup(conn: sqlite3.Connection, path: Path) -> None:
    backup = backup_path(path)
    if backup.exists() and time.time() - backup.stat().st_mtime < BACKUP_EVERY_S:
        return
    partial = backup.with_name(f".{backup.name}.{uuid.uuid4().hex[:8]}")
    target = sqlite3.connect(partial)
    try:
        conn.backup(target)
    finally:
        target.close()
    os.replace(partial, backup)  # the old backup stays whole until the new one is


def repair(path: Path) -> str:
    """Move a damaged store aside and restore its backup (or start fresh). Returns what was done, in words."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    moved = []
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.rename(aside.with_name(aside.name + suffix))
            moved.append(aside.name + suffix)
    _checked.discard(path)
    backup = backup_path(path)
    restored = ""
    if backup.exists():
        try:
            check = sqlite3.connect(f"file:{backup}?mode=ro&immutable=1", uri=True)  # no -wal, -shm beside it
            sound = check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            check.close()
        except sqlite3.DatabaseError:
            sound = False
        if sound:
            copy = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.restore")
            shutil.copyfile(backup, copy)
            os.replace(copy, path)
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(backup.stat().st_mtime))
            restored = f"restored the backup of {when}: what you did after that is only in the damaged file"
    kept = f"the damaged file is kept as {', '.join(moved)}" if moved else "there was no store file to move"
    return f"{kept}; " + (restored or "there was no sound backup, so a fresh store starts on the next use")
