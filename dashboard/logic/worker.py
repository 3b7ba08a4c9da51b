"""The worker process: where the dashboard's pages run learner code (the server side is ``kernel.py``).

It is started by ``dashboard.logic.kernel.Kernel`` and lives until the server
stops it, kills it at a time limit, or learner code ends it. In between it
answers one task at a time: ``(number, "module:function", args, kwargs,
doing)`` in, ``("ok", number, value)`` or ``("error", number, FriendlyError
fields)`` out, pickled over a socket the server handed it.

What it holds, for the tasks in ``dashboard/tasks/`` (the kernel's state):

* ``lesson(ref)``: the learner's file imported once per content (the
  ``LessonRef``'s fingerprint): a saved change is imported afresh;
* ``remember(key, make)``: what is slow to make, kept under a key built from
  those fingerprints — models in a small group (``MODELS_KEPT``, a 135M model
  is half a gigabyte), data in a larger one.

And what it does so the server can tell what happened:

* an exception (``SystemExit`` and ``KeyboardInterrupt`` included: the worker
  survives them) is turned into a ``FriendlyError`` here, where the traceback
  is, so the page names the learner's file and line;
* ``os._exit`` first tells the server the learner's line, then exits;
* ``faulthandler`` writes every thread's stack to the server's dump file on a
  crash and on ``SIGUSR1`` (the server's "where are you?" before it kills a
  task at its limit);
* a thread checks once a second that the server is still there, and ends the
  worker when it is not (a worker never outlives its dashboard).
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib
import importlib.util
import linecache
import os
import pickle
import signal
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import asdict
from multiprocessing.connection import Connection
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from lessons.engine.paths import relative_to_project
from lessons.engine.quiet import quiet_library_notices

from dashboard.logic.friendly import FriendlyError, friendly_error, is_lesson_file
from dashboard.logic.kernel import MAX_ANSWER_BYTES, LessonRef

MODELS_KEPT = 3    # the learner's model, the base model, one fine-tuned model: about 1.6 GB in float32
DATA_KEPT = 64     # recipes, splits, tokenizers, results: small next to a model

_modules: dict[tuple[str, str], ModuleType] = {}
_kept: dict[str, OrderedDict] = {"model": OrderedDict(), "data": OrderedDict()}
_lesson_paths: set[str] = set()   # every learner file imported here: their frames are "the learner's line"
_connection: Connection | None = None
_send_lock = threading.Lock()
_current: int | None = None       # the number of the task running now
_WORKER_PID = os.getpid()
_real_exit = os._exit


# -- the kernel's state, for the tasks --------------------------------------------------------------
def lesson(ref: LessonRef) -> ModuleType:
    """The learner's (or the reference's) file as a module, imported once per content."""
    key = (ref.path, ref.fingerprint)
    if key not in _modules:
        _lesson_paths.add(str(Path(ref.path).resolve()))
        spec = importlib.util.spec_from_file_location(ref.module, ref.path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # the learner's top-level code runs here, in the worker
        _modules[key] = module
    return _modules[key]


def remember(key: tuple, make: Callable[[], Any], *, group: str = "data") -> Any:
    """``make()``, once per ``key`` while it stays among the group's most recent (models: ``MODELS_KEPT``).

    Build keys from ``LessonRef.fingerprint`` and the arguments, so a changed file makes afresh.
    """
    kept, limit = _kept[group], MODELS_KEPT if group == "model" else DATA_KEPT
    if key in kept:
        kept.move_to_end(key)
        return kept[key]
    value = make()  # not kept if it raises: the next call tries again
    kept[key] = value
    while len(kept) > limit:
        kept.popitem(last=False)
    return value


def held() -> dict:
    """What the worker holds now (for tests and for the curious): modules and kept keys by group."""
    return {"pid": os.getpid(), "modules": sorted(f"{Path(path).name}@{fingerprint}" for path, fingerprint in _modules),
            "kept": {group: [repr(key) for key in kept] for group, kept in _kept.items()}}


# -- talking to the server --------------------------------------------------------------------------
def _send(message: tuple) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    with _send_lock:
        _connection.send_bytes(data)


def _answer(number: int, value: Any) -> None:
    try:
        data = pickle.dumps(("ok", number, value), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # noqa: BLE001 - a value that cannot travel is the learner's to fix
        problem = FriendlyError(f"your code returned something the page cannot receive ({type(error).__name__}: "
                                f"{error}).", hint="The page draws plain data: numbers, text, lists and dicts. "
                                                   "Return those instead of an object of your own.")
        return _send(("error", number, asdict(problem)))
    if len(data) > MAX_ANSWER_BYTES:
        problem = FriendlyError(f"your code returned {len(data) / 1e6:,.0f} MB, far more than a page can draw.",
                                hint="Return a summary (counts, a few examples) instead of everything.")
        return _send(("error", number, asdict(problem)))
    with _send_lock:
        _connection.send_bytes(data)


def _learner_line(frame) -> str:
    """``file:line: code`` of the nearest frame in a learner file from ``frame`` outwards (else ``frame``'s)."""
    first = frame
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if is_lesson_file(path, _lesson_paths):
            break
        frame = frame.f_back
    frame = frame or first
    code = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return f"{relative_to_project(frame.f_code.co_filename)}:{frame.f_lineno}" + (f": {code}" if code else "")


def _exit_saying_where(status: int = 0) -> None:
    """``os._exit`` in the worker: the server is told the caller's line first (a forked child just exits)."""
    if os.getpid() == _WORKER_PID and _connection is not None and _current is not None:
        try:
            _send(("exit", _current, int(status), _learner_line(sys._getframe(1))))
        except BaseException:  # noqa: BLE001 - exiting is what was asked for
            pass
    _real_exit(status)


def _watch_parent(parent: int, stacks: str) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:  # the server is gone (killed?): so is its worker, and its dump file
            Path(stacks).unlink(missing_ok=True)
            _real_exit(70)


def resolve(name: str) -> Callable:
    """``"dashboard.tasks.stage1:show_tokens"`` → the function."""
    module_name, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def serve(connection: Connection) -> int:
    """Answer tasks until the server closes the connection."""
    global _connection, _current
    _connection = connection
    _send(("hello", os.getpid(), threading.main_thread().ident))
    while True:
        try:
            number, name, args, kwargs, doing = connection.recv()
        except (EOFError, OSError):
            return 0
        _current = number
        try:
            value = resolve(name)(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too: the worker goes on
            _send(("error", number, asdict(friendly_error(error, doing=doing, learner_files=_lesson_paths))))
        else:
            _answer(number, value)
        finally:
            _current = None
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The dashboard's worker process (started by the dashboard).")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the server")
    parser.add_argument("--stacks", required=True, help="where faulthandler writes the stacks")
    parser.add_argument("--parent", type=int, required=True, help="the server's process id")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    quiet_library_notices()  # the server's terminal shows the learner's errors, not notices for library authors
    stacks = open(args.stacks, "a", encoding="utf-8")  # noqa: SIM115 - open for the process's whole life
    faulthandler.enable(file=stacks, all_threads=True)
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    os._exit = _exit_saying_where
    threading.Thread(target=_watch_parent, args=(args.parent, args.stacks), name="watch-the-server",
                     daemon=True).start()
    connection = Connection(args.fd)
    try:
        code = serve(connection)
    finally:
        Path(args.stacks).unlink(missing_ok=True)  # the server closed the connection: it wants no more dumps
    sys.exit(code)
