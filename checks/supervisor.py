"""The supervisor: ``pytest checks/stageN`` runs the checks in a worker process it can always stop.

Learner code can switch off a check's own time limit (``signal.alarm(0)``),
start a thread that never ends, print a hundred megabytes or call
``os._exit``. None of that can reach the process the learner started:

* the checks run in a **worker**, a second ``pytest`` in its own process group (the project's tests may have
  it forked by a warm worker, ``checks/warm_worker.py``: the same worker, without importing torch again);
* the worker writes an event per check to a log (``checks/runlog.py``), so the
  supervisor always knows which checks finished and which one is running;
* a check that runs past its limit (plus a grace period, for the worker's own
  friendly time-out to speak first) gets the whole group killed, and the
  supervisor names the check and the learner's line it was on (from a stack
  dump the worker writes on ``SIGUSR1``);
* a worker whose checks all ended but that does not exit (a thread left
  running) is killed after a grace period, its results kept;
* the worker's output reaches the terminal up to a cap: the beginning and the
  end, with the size of what was left out in between.

Then the supervisor, never the worker, writes ``--report-json`` and records
the run in the lab's store, hashed as the worker imported the file.
"""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from checks.runlog import EventReader, RunState, StageRun
from checks.warm_worker import WARM_WORKER_ENV, ForkedWorker, WarmWorkerError
from lessons.engine.limits import LIMITS
from lessons.engine.paths import relative_to_project
from lessons.engine.registry import stage_checks
from lessons.engine.stages import STAGES_BY_KEY, file_hash

EVENTS_ENV = "LAB_CHECK_EVENTS"   # set in the worker: where it writes its events
STACKS_ENV = "LAB_CHECK_STACKS"   # set in the worker: where it dumps its stacks on SIGUSR1


class OutputRelay(threading.Thread):
    """Copies the worker's output to ours: the first ``head`` bytes as they come, the last ``tail`` at the end."""

    def __init__(self, source, sink, *, head: int, tail: int):
        super().__init__(name="check-output", daemon=True)
        self.source, self.sink, self.head, self.tail = source, sink, head, tail
        self.shown, self.left_out = 0, 0
        self._tail: collections.deque[bytes] = collections.deque()
        self._tail_size = 0

    def run(self) -> None:
        while chunk := self.source.read1(65536):
            room = self.head - self.shown
            if room > 0:
                self.sink.write(chunk[:room])
                self.sink.flush()
                self.shown += min(room, len(chunk))
                chunk = chunk[room:]
            if chunk:
                self._tail.append(chunk)
                self._tail_size += len(chunk)
                while self._tail_size - len(self._tail[0]) >= self.tail:
                    dropped = self._tail.popleft()
                    self._tail_size -= len(dropped)
                    self.left_out += len(dropped)

    def finish(self) -> None:
        """Wait for the last output, then write the kept end, saying how much was left out before it."""
        self.join(timeout=5)
        kept = b"".join(self._tail)
        if len(kept) > self.tail:
            self.left_out += len(kept) - self.tail
            kept = kept[-self.tail:]
        if self.left_out:
            self.sink.write(f"\n[… {self.left_out:,} bytes of output left out: a check run shows at most "
                            f"{self.head:,} from the start and {self.tail:,} from the end …]\n".encode())
        self.sink.write(kept)
        self.sink.flush()


def _worker_command(config) -> list[str]:
    args = list(config.invocation_params.args)
    if sys.stdout.isatty() and not any(arg.startswith("--color") for arg in args):
        args.append("--color=yes")  # the worker writes to a pipe, but the learner reads a terminal
    return [sys.executable, "-m", "pytest", *args]


def _start_worker(config, env: dict[str, str]) -> subprocess.Popen | ForkedWorker:
    """The worker process: started cold, or forked by a warm worker when the project's tests set its socket."""
    command, cwd = _worker_command(config), config.invocation_params.dir
    warm_socket = os.environ.get(WARM_WORKER_ENV)  # project tests only: checks/warm_worker.py forks the worker
    if warm_socket:
        return ForkedWorker(warm_socket, command, cwd=cwd, env=env)
    return subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            process_group=0)  # its own group: killed whole, and the terminal's Ctrl-C reaches us


def _learner_line(stacks: Path, learner_files: set[str]) -> str:
    """``lessons/stage6_sampling.py:120`` of the most recent learner frame in a faulthandler dump, or ''."""
    try:
        dump = stacks.read_text(errors="replace")
    except OSError:
        return ""
    for filename, line in re.findall(r'File "([^"]+)", line (\d+)', dump):
        if str(Path(filename).resolve()) in learner_files:
            return f"{relative_to_project(filename)}:{line}"
    return ""


def _kill(process: subprocess.Popen, *, dump_stacks: bool) -> None:
    if dump_stacks:
        try:
            os.kill(process.pid, signal.SIGUSR1)
            time.sleep(0.5)
        except ProcessLookupError:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def supervise(config) -> int:
    """Run the checks in a worker, watch it, stop it when it must stop, then report and record."""
    from checks.conftest import lesson_file  # the one place that knows which file a run checks

    folder = Path(tempfile.mkdtemp(prefix="lab-checks-"))
    events, stacks = folder / "events.jsonl", folder / "stacks.txt"
    env = {**os.environ, EVENTS_ENV: str(events), STACKS_ENV: str(stacks)}
    try:
        process = _start_worker(config, env)
    except WarmWorkerError as error:
        folder.rmdir()
        print(f"LoRA Kitchen: the checks did not run: {error}", flush=True)
        return 1
    relay = OutputRelay(process.stdout, sys.stdout.buffer, head=LIMITS.check_output_head_bytes,
                        tail=LIMITS.check_output_tail_bytes)
    relay.start()
    reader = EventReader(events)
    problem, finished_at = "", None
    try:
        while process.poll() is None:
            time.sleep(0.1)
            state = reader.poll()
            running = state.running
            if running and time.time() - running.running_since > running.running_limit + LIMITS.check_kill_grace_s:
                _stop_hung(process, running, stacks, config, lesson_file)
                problem = "hung"
                break
            if state.finished:
                finished_at = finished_at or time.monotonic()
                if time.monotonic() - finished_at > LIMITS.exit_grace_s:
                    _kill(process, dump_stacks=False)
                    problem = "lingering"
                    break
    except KeyboardInterrupt:
        _kill(process, dump_stacks=False)
        problem = "interrupted"
    relay.finish()
    state = reader.poll()
    if not problem and not state.finished:
        problem = "ended early"
        _worker_ended_early(state, process.returncode)
    lines = finish(config, state)
    if problem == "lingering":
        lines.insert(0, f"The checks ended, but the run did not exit within {LIMITS.exit_grace_s:.0f} s "
                        "(a thread or process your code started was still running): it was stopped.")
    elif problem == "ended early":
        lines.insert(0, f"The check run ended before its checks did (exit status {process.returncode}): "
                        "the stage is not complete.")
    elif problem == "interrupted":
        lines.insert(0, "The check run was interrupted: the checks after the one running then did not run.")
    for line in lines:
        print(line, flush=True)
    for path in (events, stacks):
        path.unlink(missing_ok=True)
    folder.rmdir()
    if problem and problem != "lingering":
        return 1
    return process.returncode if state.exitstatus is None else int(state.exitstatus)


def _stop_hung(process, running: StageRun, stacks: Path, config, lesson_file) -> None:
    """Kill a worker whose check outran its limit; record the check as failed, with the learner's line if known."""
    stage = STAGES_BY_KEY[running.key]
    learner = str(lesson_file(config, stage).resolve())
    _kill(process, dump_stacks=True)
    line = _learner_line(stacks, {learner})
    open_line = f"\n  open:     {line}" if line else ""
    running.results[running.running] = {
        "name": running.running, "title": running.running, "outcome": "failed",
        "message": (f"this check ran longer than {running.running_limit:.0f} s and was stopped, "
                    "with the checks after it.\n"
                    "  hint:     is there a loop that never ends, or code that switches off the time limit?"
                    + open_line)}
    print(f"\n\nLoRA Kitchen: {running.running} ran longer than {running.running_limit:.0f} s "
          f"(+{LIMITS.check_kill_grace_s:.0f} s grace) and was stopped{' at ' + line if line else ''}.", flush=True)


def _worker_ended_early(state: RunState, returncode: int | None) -> None:
    """The worker died mid-run (``os._exit``, ``sys.exit`` at import, a crash): the running check failed there."""
    running = state.running
    if running is None:
        return
    running.results[running.running] = {
        "name": running.running, "title": running.running, "outcome": "failed",
        "message": (f"the check run ended inside this check (exit status {returncode}), before it could finish.\n"
                    "  hint:     does your code call os._exit, sys.exit or exit()? A function should return "
                    "its result instead.")}


# -- after the run: report, record, summarise -----------------------------------------------------
def finish(config, state: RunState) -> list[str]:
    """Write ``--report-json``, record each stage in the store, return the summary lines to print."""
    from checks.conftest import lesson_file

    report_path = config.getoption("--report-json")
    if report_path:
        Path(report_path).write_text(json.dumps({key: run.results for key, run in state.stages.items()}, indent=1))
    checked_elsewhere = config.getoption("--reference") or config.getoption("--lesson-file")
    record = not (checked_elsewhere or config.getoption("--no-record"))
    lines = []
    for key, run in state.stages.items():
        if not run.results:
            continue
        stage = STAGES_BY_KEY[key]
        names = stage_checks(key)
        counted = [run.results[name] for name in names if name in run.results]
        extra = sorted(set(run.results) - set(names))
        passed = sum(result["outcome"] == "passed" for result in counted)
        missing = len(names) - len(counted)
        complete = missing == 0 and not state.stopped_early
        imported_hash = run.file_hash or file_hash(stage.learner_file)
        if record:
            _record(key, stage, imported_hash, counted, complete=complete, total=len(names))
        who = "the reference solution" if config.getoption("--reference") else relative_to_project(
            lesson_file(config, stage))
        line = f"LoRA Kitchen stage {stage.label}: {passed} of {len(names)} checks pass on {who}."
        if missing and not state.finished:
            line += f" {missing} did not run: the run was stopped before them, so the stage is not complete."
        elif missing:
            line += (f" {missing} did not run in this run, so the stage is not complete: "
                     f"run `{stage.check_command}` for the whole stage.")
        elif passed == len(names) and not checked_elsewhere:
            if imported_hash != file_hash(stage.learner_file):
                line += " Your file changed while the checks ran: run them again to count it."
            else:
                line += " Stage complete: the next page of the dashboard is open."
        if extra:
            line += f" ({len(extra)} check(s) not in the stage's registry were not counted: {', '.join(extra[:3])})"
        lines.append(line)
    return lines


def _record(key: str, stage, imported_hash: str, results: list[dict], *, complete: bool, total: int) -> None:
    from lessons.engine.store import Store

    try:
        if complete:
            _publish_snapshot(key, stage, imported_hash)  # before the row: a published run always has its snapshot
        with Store() as store:
            store.record_check_run(key, relative_to_project(stage.learner_file), imported_hash, results,
                                   complete=complete, total=total)
    except Exception as error:  # noqa: BLE001 - recording must never hide the check results
        print(f"\n(could not save the results to the lab's store: {error})", file=sys.stderr)


def _publish_snapshot(key: str, stage, imported_hash: str) -> None:
    """In a class, keep a read-only copy of the file this complete run tested, for `class verify` to re-check."""
    from lessons.engine.classroom import active_class, is_instructor, publish_snapshot
    from lessons.engine.stages import content_hash

    config = active_class()
    if config is None or is_instructor(config):
        return
    content = stage.learner_file.read_bytes()
    if content_hash(content) == imported_hash:  # a file changed during the run has no snapshot: its run cannot be verified
        publish_snapshot(config, key, content, imported_hash)
