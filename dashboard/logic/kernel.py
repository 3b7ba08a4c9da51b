"""The kernel: the one process where the dashboard runs learner code, which the server can stop and restart.

A page never calls a learner function itself. It sends a *task* — an importable
function in ``dashboard/tasks/`` with plain arguments (a ``LessonRef`` naming
the learner's file, strings, numbers, lists, dicts) — to a worker process,
waits for the task's plain result (dicts, lists, numbers, text, small numpy
arrays) and draws it. The worker is like a notebook's kernel: it imports the
learner's lesson files, holds the models they loaded (``dashboard.logic.worker``
caches them), and can be killed and started again while the server goes on.

Why a process, and why one per server
--------------------------------------
* Learner code in a thread of the server could take the server with it:
  ``os._exit(0)`` ended the dashboard ("Connection error" in the browser),
  ``sys.exit(0)`` silently cut the page short, and a ``while True: pass`` kept a
  core busy until the dashboard was restarted, since Python cannot kill a thread.
  A process can be killed: on a timeout the server SIGKILLs the worker's whole
  process group (whatever the learner's code started goes with it).
* One worker for the whole server, not one per browser session: a dashboard
  serves one learner, every browser reload is a new Streamlit session (a worker
  per session would load the 135-million-parameter model again at each reload,
  and Streamlit says nothing when a session ends, so its worker would linger),
  and on a 2-core laptop two tasks at once would not be faster. The price:
  tasks of two tabs run one after the other, and a restart reloads the models
  for both.

What the server does (``Kernel.call``)
---------------------------------------
* starts the worker on the first call (``dashboard.logic.worker.main``, in
  a session of its own, so Ctrl+C in the dashboard's terminal does not reach
  learner code), and a fresh one on the next call after one ended;
* sends the task and waits at most ``timeout_s``; the answer is unpickled with
  an allow-list (plain data, numpy arrays), so a learner's own class coming
  back can never import and run the learner's file inside the server;
* on a timeout asks the worker where it is (a ``faulthandler`` stack dump on
  ``SIGUSR1``), then kills its process group; the same call on the same file
  version is then refused until the file changes or the worker is restarted,
  so each rerun of the page does not wait out the limit again;
* on the worker dying (``os._exit``, a segfault, the kernel's OOM killer) says
  how it ended, and where when it can: the worker reports an ``os._exit`` call's
  line before it goes, and faulthandler writes a crash's stack;
* the worker's output (the learner's prints) goes through a pipe that the
  server drains into a tail of ``LIMITS.worker_output_bytes`` and echoes to its
  terminal up to the same size per call: a print loop cannot fill its memory.

Every failure is a ``TaskFailed`` carrying a ``FriendlyError`` (headline, the
learner's file and line, a hint); ``dashboard.ui.run_task`` draws it with a
"Restart the worker" button where the worker ended or was stopped.
"""
from __future__ import annotations

import atexit
import hashlib
import io
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from lessons.engine.errors import LabError
from lessons.engine.limits import LIMITS
from lessons.engine.paths import PROJECT_ROOT, lab_home, relative_to_project
from lessons.engine.stages import file_hash, stage as find_stage

from dashboard.logic.friendly import FriendlyError, is_lesson_file

STARTUP_LIMIT_S = 60.0   # a fresh worker says hello in about 0.3 s; a very busy machine may take far longer
DUMP_WAIT_S = 1.0        # how long the server waits for the worker's stack dump before it kills it
MAX_ANSWER_BYTES = 256 * 1024 * 1024  # an answer larger than this is refused (the worker refuses it first)


# -- what a task is given: the learner's file, by name and content ----------------------------
@dataclass(frozen=True)
class LessonRef:
    """A lesson file as a task receives it: the worker imports it, once per content (``fingerprint``)."""
    key: str           # the stage, "stage2"
    path: str          # the file, absolute
    module: str        # the name it is imported under, "lessons.stage2_data" or "lessons.reference.stage2_data"
    fingerprint: str   # the file's hash: a saved change is a new module (and new cached results) in the worker
    reference: bool = False


def lesson_ref(key: str, path: Path | str, *, reference: bool = False) -> LessonRef:
    """The ``LessonRef`` of stage ``key``'s file at ``path``; a ``LabError`` saying what to do when it is missing."""
    stage = find_stage(key)
    path = Path(path)
    if not path.exists():
        raise LabError(f"{path.name} is not in lessons/{'reference/' if reference else ''}: "
                       + ("the reference solutions were withheld in this copy." if reference
                          else "run `python -m lessons generate`."))
    module = f"lessons.{'reference.' if reference else ''}{stage.module}"
    return LessonRef(stage.key, str(path.resolve()), module, file_hash(path), reference)


# -- what can go wrong, in words -------------------------------------------------------------------
class TaskFailed(Exception):
    """A task did not give its answer; ``problem`` says why for the page.

    Attributes:
        problem: the ``FriendlyError`` to draw.
        kind: ``"error"`` (it raised; the worker is fine), ``"timeout"`` (stopped at its limit),
            ``"refused"`` (stopped there before, same file), ``"died"`` (the worker ended) or ``"busy"``.
        output: what the worker printed during the call (its tail), for the curious.
    """

    def __init__(self, problem: FriendlyError, *, kind: str, output: str = ""):
        self.problem, self.kind, self.output = problem, kind, output
        super().__init__(problem.headline)

    @property
    def offers_restart(self) -> bool:
        """Whether the page should offer to restart the worker: it ended, was stopped, or is stuck."""
        return self.kind in ("timeout", "refused", "died", "busy")


RESTART_HINT = ("Press “Restart the worker” below when you have saved your fix (a fresh worker also starts on its "
                "own at the next call).")


def _prefix(doing: str) -> str:
    return f"While {doing}: " if doing else ""


def timeout_problem(doing: str, timeout_s: float, location: str, output: str) -> FriendlyError:
    return FriendlyError(
        f"{_prefix(doing)}your code did not finish within {timeout_s:g} s, so the worker process running it "
        "was stopped.", location,
        "The line shown is where it was busy when the time ran out. Is there a loop whose condition never turns "
        "false, or far more work than the task needs? The dashboard itself is fine: only the worker that runs "
        "your code was stopped (with the models it had loaded, which load again when needed). " + RESTART_HINT,
        _with_output("", output))


def refused_problem(doing: str, timeout_s: float) -> FriendlyError:
    return FriendlyError(
        f"{_prefix(doing)}this went past its {timeout_s:g} s limit last time, on this same version of your file, "
        "so it was not started again.",
        hint="Fix the code and save the file (the page tries again once the file changed), or press “Restart the "
             "worker” to give it one more try.")


def died_problem(doing: str, returncode: int | None, exit_call: tuple[int, str] | None, location: str,
                 output: str) -> FriendlyError:
    """How the worker ended, in words: an ``os._exit`` call (with its line), a signal, an exit status."""
    if exit_call is not None:
        status, where = exit_call
        headline = f"your code called os._exit({status}), which ended the worker process that runs it."
        location = where or location
    elif returncode is not None and returncode < 0:
        name = _signal_name(-returncode)
        why = {"SIGSEGV": ": a segmentation fault, a crash inside compiled code",
               "SIGKILL": ": killed from outside, often by the system when memory ran out",
               "SIGABRT": ": aborted by compiled code"}.get(name, "")
        headline = f"the worker process running your code was ended by {name}{why}."
    else:
        headline = f"the worker process running your code ended (exit status {returncode})."
    return FriendlyError(
        f"{_prefix(doing)}{headline}", location,
        "The dashboard itself is fine: only the worker that runs your code ended, and with it the models it had "
        "loaded. A function on a page must return its result, never end the program: remove the exit (or find "
        "the crash), save the file. " + RESTART_HINT, _with_output("", output))


def busy_problem(doing: str, timeout_s: float) -> FriendlyError:
    return FriendlyError(
        f"{_prefix(doing)}the worker is busy with another page's work (another browser tab?) and did not "
        f"free up within {timeout_s:g} s.",
        hint="Wait until that page has finished, or press “Restart the worker” to stop what it is doing.")


def _with_output(details: str, output: str) -> str:
    if not output.strip():
        return details
    return (details + "\n\n" if details else "") + "What the worker printed during this call (its end):\n" + output


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# -- answers: plain data only -------------------------------------------------------------------
_PLAIN_BUILTINS = {"set", "frozenset", "complex", "bytearray", "range", "slice"}
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays; any other class is refused, never imported."""

    def find_class(self, module: str, name: str):
        if (module == "builtins" and name in _PLAIN_BUILTINS) or (module in _NUMPY_MODULES and name in _NUMPY_NAMES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def plain_loads(data: bytes) -> Any:
    """``pickle.loads`` for what the worker sends: plain data and numpy arrays, nothing that runs code."""
    return _PlainUnpickler(io.BytesIO(data)).load()


# -- the worker's output: a capped tail ------------------------------------------------------------
class OutputTail:
    """The last ``limit`` bytes a worker wrote, and how many it wrote in all (thread-safe)."""

    def __init__(self, limit: int):
        self.limit, self.total = limit, 0
        self._kept = bytearray()
        self._lock = threading.Lock()

    def write(self, chunk: bytes) -> None:
        with self._lock:
            self._kept += chunk
            self.total += len(chunk)
            if len(self._kept) > self.limit:
                del self._kept[:len(self._kept) - self.limit]

    def since(self, mark: int) -> str:
        """What was written after ``total`` was ``mark``: its end, saying how much was left out before it."""
        with self._lock:
            wanted = self.total - mark
            kept = bytes(self._kept[len(self._kept) - min(wanted, len(self._kept)):]) if wanted > 0 else b""
        left_out = wanted - len(kept)
        note = f"[… {left_out:,} bytes left out …]\n" if left_out > 0 else ""
        return note + kept.decode("utf-8", errors="replace")

    def size(self) -> int:
        with self._lock:
            return len(self._kept)


def where_in_dump(dump: str, learner_files: set[str], main_thread: int | None) -> str:
    """``file:line: code`` of the most recent learner frame in a faulthandler dump ('' when none).

    The main thread's stack (where tasks run) is searched first, then every other; a learner file is a
    ``lessons/stage*.py`` (or ``lessons/reference/``) or one of ``learner_files``.
    """
    blocks = re.split(r"(?m)^(?=(?:Current thread|Thread) 0x)", dump)
    header = rf"(?:Current thread|Thread) 0x0*{main_thread:x}\b" if main_thread is not None else None
    main = [block for block in blocks if header and re.match(header, block)]
    for block in main + [block for block in blocks if block not in main]:
        for filename, line in re.findall(r'File "([^"]+)", line (\d+)', block):
            path = Path(filename).resolve()
            if is_lesson_file(path, learner_files):
                return _source_line(path, int(line))
    return ""


def _source_line(path: Path, line: int) -> str:
    import linecache

    code = linecache.getline(str(path), line).strip()  # reading the file, never running it
    return f"{relative_to_project(path)}:{line}" + (f": {code}" if code else "")


def task_name(task: Callable | str) -> str:
    """``"dashboard.tasks.stage1:show_tokens"`` for the function (a name is passed through)."""
    if isinstance(task, str):
        return task
    return f"{task.__module__}:{task.__qualname__}"


def _refs_in(value: Any) -> list[LessonRef]:
    if isinstance(value, LessonRef):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in _refs_in(item)]
    return []


def _call_key(name: str, args: tuple, kwargs: dict) -> str:
    try:
        blob = pickle.dumps((name, args, sorted(kwargs.items())))
    except Exception:  # noqa: BLE001 - an argument that does not pickle fails at send, with its own message
        blob = repr((name, args, kwargs)).encode()
    return hashlib.sha256(blob).hexdigest()


# -- one worker process --------------------------------------------------------------------------
class _Worker:
    """One running worker: its process (a group of its own), the socket to it, its output and stack dump."""

    def __init__(self, env: dict, output_limit: int):
        parent_end, child_end = socket.socketpair()
        handle, name = tempfile.mkstemp(prefix="lora-kitchen-stacks-", suffix=".txt")  # its faulthandler dumps
        os.close(handle)
        self.stacks = Path(name)
        # `-c`, not `-m dashboard.logic.worker`: run as __main__, the module would be imported a second time by
        # the tasks (``from dashboard.logic import worker``), and they would see a second, empty state.
        command = [sys.executable, "-c", "from dashboard.logic.worker import main; main()",
                   "--fd", str(child_end.fileno()), "--stacks", str(self.stacks), "--parent", str(os.getpid())]
        self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        pass_fds=(child_end.fileno(),), start_new_session=True)
        child_end.close()
        self.connection = Connection(parent_end.detach())
        self.output = OutputTail(output_limit)
        self.echo_room = output_limit  # what this call may still echo to the server's terminal
        self.main_thread: int | None = None
        self.ready = False
        self.restarted = False
        self._drain = threading.Thread(target=self._drain_output, name=f"worker-output-{self.process.pid}",
                                       daemon=True)
        self._drain.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _drain_output(self) -> None:
        stream = self.process.stdout
        while chunk := stream.read1(65536):
            self.output.write(chunk)
            room = self.echo_room
            if room > 0:
                self.echo_room = room - len(chunk)
                text = chunk[:room]
                if len(chunk) > room:
                    text += b"\n[worker: more output of this call is not shown]\n"
                try:
                    sys.__stderr__.buffer.write(text)
                    sys.__stderr__.flush()
                except (AttributeError, OSError, ValueError):
                    pass  # no terminal to echo to

    def receive(self, timeout_s: float) -> tuple | None:
        """The next message, or None when ``timeout_s`` passed; ``EOFError`` once the worker has gone."""
        if not self.connection.poll(max(0.0, timeout_s)):
            return None
        return plain_loads(self.connection.recv_bytes(MAX_ANSWER_BYTES))

    def where_busy(self, learner_files: set[str]) -> str:
        """Ask the worker for its stacks (SIGUSR1: faulthandler writes them at once, even in a tight loop)."""
        try:
            os.truncate(self.stacks, 0)
            os.kill(self.pid, signal.SIGUSR1)
        except (OSError, ProcessLookupError):
            return ""
        deadline = time.monotonic() + DUMP_WAIT_S
        size = -1
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.stacks.stat().st_size
            if now and now == size:
                break  # the dump stopped growing
            size = now
        return self.crash_location(learner_files)

    def crash_location(self, learner_files: set[str]) -> str:
        try:
            dump = self.stacks.read_text(errors="replace")
        except OSError:
            return ""
        return where_in_dump(dump, learner_files, self.main_thread)

    def kill(self) -> None:
        """SIGKILL the worker's process group (it and whatever it started), and reap it."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.wait(10)

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._drain.join(timeout=2)
        return code

    def close(self) -> None:
        try:
            self.connection.close()
        except OSError:
            pass
        self.stacks.unlink(missing_ok=True)


class Kernel:
    """The server's side of the worker: ``call`` a task, ``restart``, ``stop``.

    Args:
        env: the worker's environment; default the server's, with the project on ``PYTHONPATH``.
        output_limit: bytes of the worker's output kept (and echoed per call); default
            ``LIMITS.worker_output_bytes``.
    """

    def __init__(self, *, env: dict | None = None, output_limit: int = LIMITS.worker_output_bytes):
        self._env, self.output_limit = env, output_limit
        self._worker: _Worker | None = None
        self._call_lock = threading.Lock()    # one task at a time
        self._state_lock = threading.Lock()   # guards _worker (restart may come from another session)
        self._stopped_calls: set[str] = set()  # calls stopped at their limit: not run again on the same file
        self._sequence = 0

    # -- the worker's life ---------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first call, or after it ended)."""
        worker = self._worker
        return worker.pid if worker is not None and worker.process.poll() is None else None

    def _environment(self) -> dict:
        env = dict(os.environ if self._env is None else self._env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        env["PYTHONUNBUFFERED"] = "1"  # the learner's prints reach the page's error box as they happen
        env.setdefault("LAB_HOME", str(lab_home()))
        return env

    def _running_worker(self, deadline: float) -> _Worker:
        with self._state_lock:
            worker = self._worker
            if worker is not None and worker.process.poll() is not None:  # it ended between calls
                worker.wait(1)
                worker.close()
                worker = self._worker = None
            if worker is None:
                worker = self._worker = _Worker(self._environment(), self.output_limit)
        if not worker.ready:
            try:
                message = worker.receive(max(deadline - time.monotonic(), STARTUP_LIMIT_S))
            except (EOFError, OSError):
                message = None
            if message is None or message[0] != "hello":
                self._discard(worker)
                raise TaskFailed(FriendlyError("The worker process that runs your code did not start.",
                                               hint="Its output is below; the dashboard's terminal shows it too.",
                                               details=worker.output.since(0)), kind="died")
            _, _, worker.main_thread = message
            worker.ready = True
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        worker.close()
        with self._state_lock:
            if self._worker is worker:
                self._worker = None

    def restart(self) -> None:
        """Stop the worker (whatever it is doing) and start a fresh one; calls stopped before may run again."""
        with self._state_lock:
            worker, self._worker = self._worker, None
            self._stopped_calls.clear()
        if worker is not None:
            worker.restarted = True  # a call waiting on it says so, not "killed from outside"
            worker.kill()
            worker.close()
        with self._state_lock:
            if self._worker is None:
                self._worker = _Worker(self._environment(), self.output_limit)

    def stop(self) -> None:
        """Kill the worker (the server is going)."""
        with self._state_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
            worker.close()

    # -- a task ------------------------------------------------------------------------------------
    def call(self, task: Callable | str, *args: Any, timeout_s: float, doing: str = "", **kwargs: Any) -> Any:
        """Run ``task(*args, **kwargs)`` in the worker and return its answer; ``TaskFailed`` says what went wrong.

        Args:
            task: a function importable by the worker (or its ``"module:qualname"``).
            timeout_s: seconds to wait for the answer, the worker's start included.
            doing: what the page was doing, for the messages ("tokenizing with tokenize_function").
        """
        name = task_name(task)
        key = _call_key(name, args, kwargs)
        learner_files = {ref.path for ref in _refs_in(args) + _refs_in(kwargs)}
        started = time.monotonic()
        if not self._call_lock.acquire(timeout=timeout_s):
            raise TaskFailed(busy_problem(doing, timeout_s), kind="busy")
        try:
            if key in self._stopped_calls:
                raise TaskFailed(refused_problem(doing, timeout_s), kind="refused")
            deadline = started + timeout_s
            worker = self._running_worker(deadline)
            self._sequence += 1
            number, mark = self._sequence, worker.output.total
            worker.echo_room = self.output_limit
            try:
                worker.connection.send((number, name, args, kwargs, doing))
            except OSError:  # it ended just now, between two calls
                return self._died(worker, doing, None, mark, learner_files)
            return self._answer(worker, number, deadline, timeout_s, doing, mark, key, learner_files)
        finally:
            self._call_lock.release()

    def _answer(self, worker: _Worker, number: int, deadline: float, timeout_s: float, doing: str, mark: int,
                key: str, learner_files: set[str]) -> Any:
        exit_call: tuple[int, str] | None = None
        while True:
            try:
                message = worker.receive(deadline - time.monotonic())
            except (EOFError, OSError):
                return self._died(worker, doing, exit_call, mark, learner_files)
            except pickle.UnpicklingError as refused:
                raise TaskFailed(FriendlyError(
                    f"{_prefix(doing)}your code returned a {refused} object, which the page cannot use.",
                    hint="The page draws plain data: numbers, text, lists and dicts (and small numpy arrays). "
                         "Return those instead of an object of your own."), kind="error") from None
            except BaseException:
                self._discard(worker)  # interrupted while waiting (the page rerun): the answer would come too late
                raise
            if message is None:
                location = worker.where_busy(learner_files)
                output = worker.output.since(mark)
                self._discard(worker)
                self._stopped_calls.add(key)
                raise TaskFailed(timeout_problem(doing, timeout_s, location, output), kind="timeout", output=output)
            kind, answer_to = message[0], message[1]
            if answer_to != number:
                continue  # an answer to a call that was given up on
            if kind == "exit":
                exit_call = (message[2], message[3])
            elif kind == "ok":
                return message[2]
            elif kind == "error":
                output = worker.output.since(mark)
                problem = FriendlyError(**message[2])
                problem.details = _with_output(problem.details, output)
                raise TaskFailed(problem, kind="error", output=output)

    def _died(self, worker: _Worker, doing: str, exit_call: tuple[int, str] | None, mark: int,
              learner_files: set[str]) -> Any:
        returncode = worker.wait(5)
        if returncode is None:  # the socket closed but the process lingers: make sure it is gone
            worker.kill()
            returncode = worker.process.returncode
        output = worker.output.since(mark)
        location = "" if exit_call else worker.crash_location(learner_files)
        self._discard(worker)
        if worker.restarted:
            raise TaskFailed(FriendlyError(f"{_prefix(doing)}the worker was restarted (from this or another page) "
                                           "while it ran this.", hint="Reload the page to run it again."),
                             kind="died", output=output)
        raise TaskFailed(died_problem(doing, returncode, exit_call, location, output), kind="died", output=output)


# -- the server's one kernel --------------------------------------------------------------------
_shared: Kernel | None = None
_shared_lock = threading.Lock()


def shared_kernel() -> Kernel:
    """The server's kernel, made on first use and stopped when the server exits."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Kernel()
            atexit.register(_shared.stop)
        return _shared

