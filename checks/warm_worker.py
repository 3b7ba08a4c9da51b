"""A warm worker: the check runs' worker, started by a fork of a process that has already imported torch.

Every ``pytest checks/stageN`` run is a supervisor and a worker (``checks/supervisor.py``); the worker
spends most of a short run importing torch, transformers, peft and datasets. A warm worker is a process
that imported them once, ran no torch op and started no thread (so a fork of it is safe), and forks one
child per check run. The child becomes exactly the worker the supervisor would have started: the same
argv, environment and folder, its own process group (the supervisor's ``killpg`` reaches all of it), its
output on the supervisor's pipe, ``SIGUSR1`` stack dumps, and its exit status relayed to the supervisor.
When the supervisor dies, the warm worker kills the child's group, as the kernel does for a cold worker.

The supervisor uses one when ``LAB_CHECK_WARM_WORKER`` names its socket (``checks/supervisor.py``). It is a
switch for the project's tests, which run a hundred planted mistakes: a learner's run always starts cold.
Two things differ from a cold start, neither seen by a check: every child shares the warm worker's
``str`` hash seed, and libraries read the environment once, when the warm worker imported them (so a
request whose import-time settings differ is refused, never run with the wrong ones).

    server:  python -m checks.warm_worker SOCKET   (prints "ready" on its stdout once it can fork)
    client:  ForkedWorker(SOCKET, command, cwd=..., env=...)   (a Popen for the supervisor's needs)
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

WARM_WORKER_ENV = "LAB_CHECK_WARM_WORKER"  # the warm worker's socket; set only by the project's tests

# What a check run's worker imports before its first check (torch alone is most of it); names from the
# lazy ``transformers``/``peft`` packages are looked up so their submodules load too.
WARM_IMPORTS = {
    "torch": (), "torch.nn.functional": (), "numpy": (), "safetensors": ("safe_open",), "tokenizers.processors": (),
    "datasets": ("Dataset", "DatasetDict"),
    "transformers": ("AutoTokenizer", "AutoModelForCausalLM", "LlamaConfig", "LlamaForCausalLM", "GPT2Config",
                     "GPT2LMHeadModel", "Trainer", "TrainingArguments", "TrainerCallback", "set_seed",
                     "DataCollatorForLanguageModeling", "TemperatureLogitsWarper", "TopPLogitsWarper"),
    "transformers.trainer_utils": (), "peft": ("LoraConfig", "PeftModel", "TaskType", "get_peft_model"),
    "pytest": (), "_pytest.python": (), "_pytest.terminal": (), "_pytest.faulthandler": (), "ctypes": (),
}
# Environment variables libraries read when they are imported: a request must agree with the warm worker on
# them, since a fork cannot import again. Per-run variables (LAB_*, the event log's path) are set in the child.
IMPORT_TIME_PREFIXES = ("PYTHON", "HF_", "HUGGINGFACE", "TRANSFORMERS", "TORCH", "PYTORCH", "OMP_", "MKL_",
                        "OPENBLAS", "CUDA", "TOKENIZERS", "NUMEXPR", "KMP_", "DATASETS", "PEFT", "LD_")
# Set for the worker by checks/conftest.py before it imports transformers: the same here, before we do.
CHECK_ENV_DEFAULTS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
PR_SET_PDEATHSIG = 1


class WarmWorkerError(RuntimeError):
    """The warm worker cannot start this run (unreachable, or asked for something it cannot fork)."""


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when the one that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _thread_count() -> int:
    """OS threads of this process (a library's thread pool counts, not only Python's threads)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def import_time_differences(wanted: dict[str, str], have: dict[str, str]) -> list[str]:
    """The import-time variables on which ``wanted`` and the environment the imports saw disagree."""
    keys = {key for key in {*wanted, *have} if key.upper().startswith(IMPORT_TIME_PREFIXES)}
    return sorted(key for key in keys if wanted.get(key) != have.get(key))


# -- the child: becomes the worker ---------------------------------------------------------------
def _exit_code(status) -> int:
    """What the interpreter makes of ``SystemExit(status)``."""
    if status is None:
        return 0
    if isinstance(status, int):
        return status & 0xFF
    print(status, file=sys.stderr)
    return 1


def _become_worker(request: dict, output_fd: int, server_fds: list[int]) -> None:
    """In the forked child: turn into ``python -m pytest ARGS`` as the supervisor asked, run it, exit."""
    code = 1
    try:
        _die_with_parent()
        os.setpgid(0, 0)
        for fd in server_fds:
            os.close(fd)
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGUSR1, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        os.close(output_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**request["env"], **request["set_by_imports"]})
        import pytest
        from _pytest.config import _console_main  # what `python -m pytest` runs (pytest/__main__.py)

        for name in request["plugin_modules_imported"]:  # pytest cannot rewrite their asserts now: it would warn
            module = sys.modules[name]
            module.__doc__ = f"{module.__doc__ or ''}\n\nPYTEST_DONT_REWRITE"
        sys.argv = [str(Path(pytest.__file__).with_name("__main__.py")), *request["argv"][3:]]
        sys.path[0] = request["cwd"]  # `python -m` puts the folder it starts in first
        sys.dont_write_bytecode = bool(request["env"].get("PYTHONDONTWRITEBYTECODE"))
        if "numpy" in sys.modules:  # a fresh process draws fresh entropy; a fork would repeat its parent's
            sys.modules["numpy"].random.seed()
        try:
            status = _console_main()
        except SystemExit as exit_:
            status = exit_.code
        except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught error
            traceback.print_exc()
            status = 1
        code = _exit_code(status)
        threading._shutdown()  # as the interpreter does at exit: wait for the run's threads (or the supervisor's kill)
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - never return into the server's loop
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


# -- the server ----------------------------------------------------------------------------------
@dataclass
class _Run:
    connection: socket.socket
    pid: int = 0
    supervisor_gone: bool = False


@dataclass
class WarmWorkerServer:
    """Accepts one connection per check run, forks its worker, relays its exit; one thread, so forks are safe."""
    socket_path: Path
    imported_with: dict[str, str]       # the environment the imports saw
    set_by_imports: dict[str, str]      # what they added to it (torch sets its compile cache's folder, say)
    # Idle native threads the imports leave (torch's OpenMP pool, pyarrow's jemalloc): their libraries start
    # them again in a fork. Any thread more (a Python one, or one started since) and it forks nothing.
    threads_after_imports: int
    plugin_modules_imported: list[str]  # pytest plugins' modules the imports loaded (anyio, by huggingface_hub)
    forked: int = 0
    runs: dict[int, _Run] = field(default_factory=dict)  # connection fd -> its run

    def serve(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen(64)
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        print("ready", flush=True)
        while True:
            for key, _ in self.selector.select(timeout=0.05):
                if key.fileobj is listener:
                    connection, _ = listener.accept()
                    self.runs[connection.fileno()] = _Run(connection)
                    self.selector.register(connection, selectors.EVENT_READ)
                else:
                    self._readable(self.runs[key.fileobj.fileno()])
            self._reap()

    def _readable(self, run: _Run) -> None:
        if run.pid:  # the supervisor sends nothing after its request: this is its end closing
            self._supervisor_gone(run)
            return
        fds: list[int] = []
        try:
            run.connection.settimeout(5)
            request, fds = _receive_request(run.connection)
            pid = self._fork(request, fds)
        except (WarmWorkerError, OSError, ValueError, KeyError) as error:
            for fd in fds:
                os.close(fd)
            _send(run.connection, {"error": str(error)})
            self._close(run)
            return
        run.pid = pid
        self.forked += 1
        print(f"forked {pid}: {' '.join(request['argv'][3:])}", file=sys.stderr, flush=True)
        _send(run.connection, {"pid": pid, "forked": self.forked})

    def _fork(self, request: dict, fds: list[int]) -> int:
        """Fork the run's worker; the caller closes ``fds`` if this raises."""
        if len(fds) != 1:
            raise WarmWorkerError(f"a request carries the worker's output pipe, and only it (got {len(fds)} fds)")
        argv = request["argv"]
        if argv[:3] != [sys.executable, "-m", "pytest"]:
            raise WarmWorkerError(f"a warm worker runs `{sys.executable} -m pytest …` only, not {argv[:3]}")
        differences = import_time_differences(request["env"], self.imported_with)
        if differences:
            raise WarmWorkerError("the warm worker imported its libraries with other values of "
                                  f"{', '.join(differences)}: start it with the run's environment")
        threads, python_threads = _thread_count(), threading.active_count()
        if python_threads != 1 or threads > self.threads_after_imports:
            raise WarmWorkerError(f"the warm worker has {threads} threads ({python_threads} in Python), "
                                  f"more than its imports left ({self.threads_after_imports}): forking it would "
                                  "not be safe")
        sys.stdout.flush()
        sys.stderr.flush()
        server_fds = [self.listener.fileno(), self.selector.fileno(), *self.runs]
        pid = os.fork()
        if pid == 0:
            _become_worker({**request, "set_by_imports": self.set_by_imports,
                            "plugin_modules_imported": self.plugin_modules_imported}, fds[0], server_fds)
        os.close(fds.pop())
        try:
            os.setpgid(pid, pid)  # also here, so the group exists before the supervisor learns the pid
        except OSError:
            pass  # the child got there first, or already ended
        return pid

    def _supervisor_gone(self, run: _Run) -> None:
        """The supervisor died (a timeout's SIGKILL, say): its worker goes too, as a cold worker would."""
        run.supervisor_gone = True
        self.selector.unregister(run.connection)
        try:
            os.killpg(run.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = next((r for r in self.runs.values() if r.pid == pid), None)
            if run is None:
                continue
            if not run.supervisor_gone:
                _send(run.connection, {"exit": os.waitstatus_to_exitcode(status)})
            self._close(run)

    def _close(self, run: _Run) -> None:
        self.runs.pop(run.connection.fileno(), None)
        if not run.supervisor_gone:
            try:
                self.selector.unregister(run.connection)
            except KeyError:
                pass
        run.connection.close()


def _send(connection: socket.socket, message: dict) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the supervisor is gone; its worker is killed when its end is seen closed


def _receive_request(connection: socket.socket) -> tuple[dict, list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, 1 << 20, 4)
    while not data.endswith(b"\n"):
        more = connection.recv(1 << 20)
        if not more:
            raise WarmWorkerError("the request ended before its last line")
        data += more
    return json.loads(data), list(fds)


def _plugin_modules_imported() -> list[str]:
    """Modules of installed pytest plugins that are already imported (pytest marks those for assert rewriting)."""
    from importlib.metadata import distributions

    from _pytest.config import _iter_rewritable_modules

    names = set()
    for dist in distributions():
        if any(entry.group == "pytest11" for entry in dist.entry_points):
            names.update(_iter_rewritable_modules([str(file) for file in dist.files or []]))
    return sorted(names & set(sys.modules))


def warm_up() -> None:
    """Import what a check run's worker imports, run nothing."""
    for name, attributes in WARM_IMPORTS.items():
        module = importlib.import_module(name)
        for attribute in attributes:
            getattr(module, attribute)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m checks.warm_worker SOCKET", file=sys.stderr)
        return 2
    _die_with_parent()  # the tests that started it ended: so does it, and its children with it
    for key, value in CHECK_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    before = dict(os.environ)
    warm_up()
    added = {key: value for key, value in os.environ.items() if before.get(key) != value}
    WarmWorkerServer(Path(argv[0]), imported_with=before, set_by_imports=added,
                     threads_after_imports=_thread_count(),
                     plugin_modules_imported=_plugin_modules_imported()).serve()
    return 0


# -- the client: what the supervisor holds instead of a Popen ------------------------------------
class ForkedWorker:
    """A worker forked by the warm worker, with the parts of ``subprocess.Popen`` the supervisor uses."""

    def __init__(self, socket_path: str | Path, command: list[str], *, cwd, env: dict[str, str]):
        read_fd, write_fd = os.pipe()
        self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = b""
        self.returncode: int | None = None
        try:
            self._connection.connect(str(socket_path))
            request = {"argv": [str(part) for part in command], "cwd": str(cwd), "env": env}
            socket.send_fds(self._connection, [json.dumps(request).encode() + b"\n"], [write_fd])
        except OSError as error:
            os.close(read_fd)
            self._connection.close()
            raise WarmWorkerError(f"no warm worker answers at {socket_path} ({error})") from None
        finally:
            os.close(write_fd)
        try:
            reply = self._message(block=True)
        except EOFError:
            reply = None
        if reply is None or "pid" not in reply:
            os.close(read_fd)
            self._connection.close()
            reason = (reply or {}).get("error", "it closed the connection")
            raise WarmWorkerError(f"the warm worker did not start the run: {reason}")
        self.pid: int = reply["pid"]
        self.forked: int = reply["forked"]
        self.stdout = os.fdopen(read_fd, "rb")

    def _message(self, *, block: bool) -> dict | None:
        """The warm worker's next message; None if none has come yet; EOFError if it closed the connection."""
        while b"\n" not in self._buffer:
            self._connection.setblocking(block)
            try:
                chunk = self._connection.recv(65536)
            except BlockingIOError:
                return None
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _read_exit(self, *, block: bool) -> None:
        if self.returncode is not None:
            return
        try:
            message = self._message(block=block)
        except EOFError:  # the warm worker died, and its children with it (PDEATHSIG)
            message = {"exit": -signal.SIGKILL}
        if message is not None:
            self.returncode = int(message["exit"])
            self._connection.close()

    def poll(self) -> int | None:
        self._read_exit(block=False)
        return self.returncode

    def wait(self) -> int:
        self._read_exit(block=True)
        return self.returncode


# -- for the project's tests: start one, stop it -----------------------------------------------
class WarmWorker:
    """A running warm worker; ``env()`` is the environment that sends check runs to it."""

    def __init__(self, folder: Path, *, env: dict[str, str] | None = None, log: Path | None = None):
        from lessons.engine.paths import PROJECT_ROOT

        self.socket_path = Path(folder) / "warm-worker.sock"
        self.log = log or Path(folder) / "warm-worker.log"
        started = time.monotonic()
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - open while the server runs
        self.process = subprocess.Popen([sys.executable, "-m", "checks.warm_worker", str(self.socket_path)],
                                        cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=self._log_file)
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise WarmWorkerError(f"the warm worker did not start: {self.log.read_text(errors='replace')[-2000:]}")
        self.warm_up_seconds = time.monotonic() - started

    def forked_pids(self) -> list[int]:
        """The workers it has forked so far, oldest first (from its log)."""
        return [int(line.split()[1].rstrip(":")) for line in self.log.read_text().splitlines()
                if line.startswith("forked ")]

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return {**(os.environ if base is None else base), WARM_WORKER_ENV: str(self.socket_path)}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._log_file.close()


if __name__ == "__main__":
    sys.exit(main())
