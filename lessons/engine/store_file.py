"""The store's file: made whole or not at all, checked when opened, backed up, repaired on request.

* **Creation is atomic.** A new store is built under a temporary name (WAL mode,
  every table, the schema version) and linked into place in one step, so thirty
  processes opening a store that does not exist yet all find either no file or
  a complete one: no ``database is locked`` at ``PRAGMA journal_mode``, no
  ``no such table`` for a reader.
* **Migrations are ordered.** ``PRAGMA user_version`` is the schema version;
  an older store is brought up to date step by step, inside one immediate
  transaction (which waits for the busy timeout, unlike a journal-mode change).
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
