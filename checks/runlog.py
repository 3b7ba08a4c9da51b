"""What a check run tells its supervisor, one JSON line per event, and what the supervisor makes of it.

The checks run in a worker process (see ``checks/supervisor.py``). As it goes,
the worker appends events to a log file:

    {"e": "import", "stage": "stage3", "hash": "9f2c…"}           a lesson file was loaded: the hash of its bytes
    {"e": "start", "stage": "stage3", "name": "test_pad", "limit": 60, "t": …}
    {"e": "result", "stage": "stage3", "name": "test_pad", "outcome": "passed", …}
    {"e": "end", "stage": "stage3", "name": "test_pad"}
    {"e": "finished", "exitstatus": 0}

so that whatever happens to the worker (a hang, ``os._exit``, a thread that
never ends), the supervisor knows which checks finished, which one was
running, and which file content they ran on.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

MESSAGE_LIMIT = 4000  # characters of one check's message kept in the log (the store keeps the same)


def cut(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters left out)"


class EventWriter:
    """The worker's side: appends one line per event; each line is written with a single ``write``."""

    def __init__(self, path: str | Path):
        self._file = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - open for the whole run

    def emit(self, event: str, **fields) -> None:
        self._file.write(json.dumps({"e": event, **fields}, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


@dataclass
class StageRun:
    """One stage's part of a check run, as the events tell it."""
    key: str
    file_hash: str = ""                       # of the bytes that were imported
    results: dict[str, dict] = field(default_factory=dict)   # name -> {"name", "title", "outcome", "message"}
    running: str = ""                         # the check that started and has not ended
    running_since: float = 0.0
    running_limit: float = 0.0


@dataclass
class RunState:
    stages: dict[str, StageRun] = field(default_factory=dict)
    finished: bool = False                    # the worker reached the end of its session
    exitstatus: int | None = None
    stopped_early: bool = False               # -x, --maxfail: the session stopped before every check ran

    def stage(self, key: str) -> StageRun:
        return self.stages.setdefault(key, StageRun(key))

    @property
    def running(self) -> StageRun | None:
        return next((stage for stage in self.stages.values() if stage.running), None)


def apply(state: RunState, event: dict) -> None:
    """Fold one event into the state."""
    kind = event.get("e")
    if kind == "finished":
        state.finished, state.exitstatus = True, event.get("exitstatus")
        state.stopped_early = bool(event.get("stopped_early"))
        return
    stage = state.stage(event["stage"])
    if kind == "import" and not stage.file_hash:
        stage.file_hash = event["hash"]
    elif kind == "start":
        stage.running, stage.running_since, stage.running_limit = event["name"], event["t"], event["limit"]
    elif kind == "end":
        stage.running = ""
    elif kind == "result":
        name = event["name"]
        earlier = stage.results.get(name)
        if earlier is None or earlier["outcome"] == "passed":  # an error in teardown still counts
            stage.results[name] = {key: event.get(key, "") for key in ("name", "title", "outcome", "message")}


class EventReader:
    """The supervisor's side: reads the complete lines written since the last call."""

    def __init__(self, path: str | Path):
        self.path, self._offset, self.state = Path(path), 0, RunState()

    def poll(self) -> RunState:
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                data = file.read()
        except FileNotFoundError:
            return self.state
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            try:
                apply(self.state, json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a line the worker's code mangled is not a result
        return self.state
