"""The lab's store: one SQLite database per learner, in WAL mode.

Everything a learner does that is worth keeping goes here: check results (with
a hash of the file they ran on), training runs and their metrics, generations,
evaluations, written answers, hints revealed. Each write is one transaction, so
a process killed mid-write leaves the database as it was before that write:
nothing half-written, nothing earlier lost. How the file itself is made,
checked, migrated, backed up and repaired: ``store_file.py``.

In a class (``LAB_CLASS_DIR`` set), each learner's database lives in their own
folder, ``$LAB_CLASS_DIR/<account>/lab.sqlite`` (``classroom.py``), so every write
reaches the class as it happens; it keeps a rollback journal rather than WAL,
because a WAL file cannot be read by an instructor who may not write beside it.
The instructor's Class page reads them all, read-only, and never runs learner code.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .classroom import STORE_NAME, ClassConfig, active_class, is_instructor, store_path_in_class
from .paths import lab_home, learner_id
from .store_file import StoreDamaged, connect, is_damage


def plain(value: Any) -> Any:
    """``value`` as plain data: tensors and numpy values become lists and numbers, containers are walked."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {key if isinstance(key, (str, int, float, bool)) else str(key): plain(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if hasattr(value, "tolist"):  # a torch tensor, a numpy array or a numpy number
        return value.tolist()
    return value  # anything else travels as it is, or is refused with a message naming it


SCHEMA = """
CREATE TABLE IF NOT EXISTS check_runs (
    id INTEGER PRIMARY KEY, learner TEXT NOT NULL, stage TEXT NOT NULL,
    file_path TEXT NOT NULL, file_hash TEXT NOT NULL,
    complete INTEGER NOT NULL,         -- 1 when every check of the stage ran (no -k, no -x stop)
    passed INTEGER NOT NULL, failed INTEGER NOT NULL, total INTEGER NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS check_results (
    run_id INTEGER NOT NULL REFERENCES check_runs(id), check_name TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',    -- the check's docstring, in words
    outcome TEXT NOT NULL,             -- passed | failed | error | skipped | todo
    message TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS check_results_by_run ON check_results(run_id);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, learner TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,              -- queued | running | finished | failed | cancelled
    reason TEXT NOT NULL DEFAULT '', pid INTEGER, checkpoint_dir TEXT NOT NULL DEFAULT '',
    summary TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, split TEXT NOT NULL,
    epoch REAL, loss REAL, learning_rate REAL, tokens_per_s REAL, eta_s REAL,
    extra TEXT NOT NULL DEFAULT '{}', t REAL NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS generations (
    id INTEGER PRIMARY KEY, learner TEXT NOT NULL, stage TEXT NOT NULL, label TEXT NOT NULL,
    model TEXT NOT NULL, prompt TEXT NOT NULL, text TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY, learner TEXT NOT NULL, stage TEXT NOT NULL, run_id TEXT,
    name TEXT NOT NULL, value REAL, details TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    learner TEXT NOT NULL, stage TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
    updated REAL NOT NULL, PRIMARY KEY (learner, stage, question));
CREATE TABLE IF NOT EXISTS reveals (
    learner TEXT NOT NULL, stage TEXT NOT NULL, exercise TEXT NOT NULL, level TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    learner TEXT NOT NULL, stage TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    created REAL NOT NULL);
"""


def _create_tables(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def _add_run_queue(conn: sqlite3.Connection) -> None:
    # Where the run's job waits: "local" (this machine's queue) or "slurm:JOBID".
    conn.execute("ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT ''")


# Schema version N is reached by running MIGRATIONS[:N] in order; append a step, never edit an old one.
MIGRATIONS = [
    _create_tables,  # 1: the tables above
    _add_run_queue,  # 2: runs.queue
]


def default_store_path(config: ClassConfig | None = None) -> Path:
    """This learner's store: in the class folder for a learner in ``config`` (default: the active class),
    else ``$LAB_HOME/lab.sqlite``."""
    config = config or active_class()
    if config is not None and not is_instructor(config):
        return store_path_in_class(config)
    return lab_home() / STORE_NAME


def _loads(text: str) -> Any:
    return json.loads(text) if text else None


class Store:
    """A learner's store. ``Store()`` opens (and creates) the default one.

    Args:
        path: the database file; default ``$LAB_HOME/lab.sqlite`` (or the class folder).
        learner: whose rows to write and read; default ``LAB_LEARNER`` or the login name (in a class: the account).
        read_only: open without creating or writing (the Class page reads others' stores so).
    """

    def __init__(self, path: str | Path | None = None, *, learner: str | None = None, read_only: bool = False):
        config = active_class()
        # In a class, one's own store holds one's own rows, under one's account.
        self.learner = learner_id() if path is None and config is not None else learner or learner_id()
        self.path = Path(path) if path else default_store_path(config)
        shared = not read_only and config is not None and config.folder in self.path.parents
        self._conn = connect(self.path, read_only=read_only, migrations=MIGRATIONS, shared=shared)
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All the writes inside happen together, or not at all."""
        with self._damage_said():
            with self._conn:
                yield self._conn

    def _rows(self, sql: str, *params) -> list[dict]:
        with self._damage_said():
            return [dict(row) for row in self._conn.execute(sql, params)]

    @contextmanager
    def _damage_said(self) -> Iterator[None]:
        """A file damaged while open reads as ``StoreDamaged`` (what to run), not as SQLite's words."""
        try:
            yield
        except sqlite3.DatabaseError as error:
            if is_damage(error):
                raise StoreDamaged(self.path, str(error)) from None
            raise

    # -- checks -------------------------------------------------------------------
    def record_check_run(self, stage: str, file_path: str, file_hash: str,
                         results: list[dict], *, complete: bool, total: int | None = None) -> int:
        """Save one ``pytest checks/<stage>`` run: a dict per check with name, title, outcome, message.

        ``total`` is how many checks the stage has (default: as many as ``results``);
        a run that ran fewer is recorded with the checks it ran, out of that total.
        """
        passed = sum(result["outcome"] == "passed" for result in results)
        total = len(results) if total is None else total
        with self.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO check_runs (learner, stage, file_path, file_hash, complete, passed, failed, total, created)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (self.learner, stage, file_path, file_hash, int(complete), passed, total - passed,
                 total, time.time()))
            conn.executemany("INSERT INTO check_results (run_id, check_name, title, outcome, message)"
                             " VALUES (?,?,?,?,?)",
                             [(cursor.lastrowid, r["name"], r.get("title", ""), r["outcome"], r.get("message", ""))
                              for r in results])
        return cursor.lastrowid

    def latest_check_run(self, stage: str, *, complete_only: bool = False) -> dict | None:
        rows = self._rows("SELECT * FROM check_runs WHERE learner=? AND stage=?"
                          + (" AND complete=1" if complete_only else "") + " ORDER BY id DESC LIMIT 1",
                          self.learner, stage)
        if not rows:
            return None
        run = rows[0]
        run["results"] = self._rows("SELECT check_name, title, outcome, message FROM check_results WHERE run_id=?",
                                    run["id"])
        return run

    # -- training runs and metrics -------------------------------------------------
    def start_run(self, kind: str, config: dict, *, name: str = "", run_id: str | None = None,
                  status: str = "running", checkpoint_dir: str = "") -> str:
        run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        now = time.time()
        with self.transaction() as conn:
            conn.execute("INSERT INTO runs (id, learner, kind, name, config, status, pid, checkpoint_dir, created, updated)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (run_id, self.learner, kind, name, json.dumps(config, default=str), status, os.getpid(),
                          checkpoint_dir, now, now))
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set ``status``, ``reason``, ``pid``, ``checkpoint_dir``, ``queue`` or ``summary`` (a dict) of a run."""
        allowed = {"status", "reason", "pid", "checkpoint_dir", "summary", "config", "queue"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        values = {key: json.dumps(value, default=str) if key in {"summary", "config"} else value
                  for key, value in fields.items()}
        assignments = ", ".join(f"{key}=?" for key in values)
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET {assignments}, updated=? WHERE id=?",
                         (*values.values(), time.time(), run_id))

    def log_metric(self, run_id: str, step: int, split: str = "train", *, epoch: float | None = None,
                   loss: float | None = None, learning_rate: float | None = None,
                   tokens_per_s: float | None = None, eta_s: float | None = None, **extra: Any) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO metrics (run_id, step, split, epoch, loss, learning_rate, tokens_per_s, eta_s,"
                         " extra, t) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (run_id, step, split, epoch, loss, learning_rate, tokens_per_s, eta_s,
                          json.dumps(extra, default=str), time.time()))
            conn.execute("UPDATE runs SET updated=? WHERE id=?", (time.time(), run_id))

    def delete_metrics_after(self, run_id: str, step: int) -> None:
        """Forget a run's metrics after ``step``: a resumed run re-does those steps, and a curve has no doubles."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, step))

    def run(self, run_id: str) -> dict | None:
        rows = self._rows("SELECT * FROM runs WHERE id=?", run_id)
        if not rows:
            return None
        row = rows[0]
        row["config"], row["summary"] = _loads(row["config"]), _loads(row["summary"])
        return row

    def runs(self, kind: str | None = None) -> list[dict]:
        rows = self._rows("SELECT * FROM runs WHERE learner=?" + (" AND kind=?" if kind else "")
                          + " ORDER BY created", *([self.learner, kind] if kind else [self.learner]))
        for row in rows:
            row["config"], row["summary"] = _loads(row["config"]), _loads(row["summary"])
        return rows

    def metrics(self, run_id: str) -> list[dict]:
        rows = self._rows("SELECT * FROM metrics WHERE run_id=? ORDER BY step, t", run_id)
        for row in rows:
            row.update(_loads(row.pop("extra")) or {})
        return rows

    # -- generations, evaluations, answers, hints, results -------------------------
    def save_generation(self, stage: str, label: str, model: str, prompt: str, text: str,
                        settings: dict | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO generations (learner, stage, label, model, prompt, text, settings, created)"
                         " VALUES (?,?,?,?,?,?,?,?)",
                         (self.learner, stage, label, model, prompt, text, json.dumps(settings or {}), time.time()))

    def _select(self, table: str, json_column: str, **filters: str | None) -> list[dict]:
        """This learner's rows of ``table``, oldest first, narrowed by the filters that are not None."""
        sql, params = f"SELECT * FROM {table} WHERE learner=?", [self.learner]
        for column, value in filters.items():
            if value is not None:
                sql += f" AND {column}=?"
                params.append(value)
        rows = self._rows(sql + " ORDER BY id", *params)
        for row in rows:
            row[json_column] = _loads(row[json_column])
        return rows

    def generations(self, stage: str | None = None, label: str | None = None) -> list[dict]:
        return self._select("generations", "settings", stage=stage, label=label)

    def save_evaluation(self, stage: str, name: str, value: float | None, *, run_id: str | None = None,
                        details: dict | None = None) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO evaluations (learner, stage, run_id, name, value, details, created)"
                         " VALUES (?,?,?,?,?,?,?)",
                         (self.learner, stage, run_id, name, value, json.dumps(details or {}, default=str),
                          time.time()))

    def evaluations(self, stage: str | None = None, name: str | None = None) -> list[dict]:
        return self._select("evaluations", "details", stage=stage, name=name)

    def save_answer(self, stage: str, question: str, answer: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO answers (learner, stage, question, answer, updated) VALUES (?,?,?,?,?)"
                         " ON CONFLICT(learner, stage, question) DO UPDATE SET answer=excluded.answer,"
                         " updated=excluded.updated", (self.learner, stage, question, answer, time.time()))

    def answers(self, stage: str | None = None) -> dict[tuple[str, str], str]:
        rows = self._rows("SELECT stage, question, answer FROM answers WHERE learner=?"
                          + (" AND stage=?" if stage else ""), *([self.learner, stage] if stage else [self.learner]))
        return {(row["stage"], row["question"]): row["answer"] for row in rows}

    def record_reveal(self, stage: str, exercise: str, level: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT INTO reveals (learner, stage, exercise, level, created) VALUES (?,?,?,?,?)",
                         (self.learner, stage, exercise, level, time.time()))

    def reveals(self, stage: str | None = None) -> list[dict]:
        return self._rows("SELECT * FROM reveals WHERE learner=?" + (" AND stage=?" if stage else "")
                          + " ORDER BY created", *([self.learner, stage] if stage else [self.learner]))

    def put_result(self, stage: str, key: str, value: Any) -> None:
        """Keep a result of the learner's own code (a report, a table) for the dashboard."""
        with self.transaction() as conn:
            conn.execute("INSERT INTO results (learner, stage, key, value, created) VALUES (?,?,?,?,?)",
                         (self.learner, stage, key, json.dumps(value, default=str), time.time()))

    def result(self, stage: str, key: str) -> Any:
        """The newest value saved under ``key``, or None."""
        rows = self._rows("SELECT value FROM results WHERE learner=? AND stage=? AND key=? ORDER BY rowid DESC LIMIT 1",
                          self.learner, stage, key)
        return _loads(rows[0]["value"]) if rows else None
