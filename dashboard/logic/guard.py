"""A time limit around learner code: a function that never returns must not freeze a page for good.

The results areas call the learner's own functions, and a beginner's ``while``
loop that never ends is a classic. ``call_with_time_limit`` runs the call with
a limit; ``dashboard.ui.run_learner_code`` draws what went wrong.

How, and why so
---------------
* **Not a signal.** ``signal.alarm`` interrupts only the main thread, and
  Streamlit runs each page script in a thread of its own (its ScriptRunner), so
  ``signal.signal`` there raises ``ValueError`` and the alarm would never reach
  the page's code.
* **Not a child process.** The learner's functions take live objects (a
  135-million-parameter model, a tokenizer, a Dataset) and return others; pickling
  them to another process on every call would cost seconds, and many are not
  picklable at all.
* **A worker thread, and an honest message.** The call runs in a daemon
  thread; the page waits at most ``timeout_s`` and then stops waiting. Python
  cannot kill a thread, so the call *keeps running* in the dashboard's process,
  using a CPU core until it ends (or until the dashboard restarts): the message
  says so, and says where the code is busy (the line the thread is on now, found
  with ``sys._current_frames``). The thread is a daemon, so it never keeps the
  dashboard from quitting.
* **No pile-up.** While a timed-out call of a function is still running, a new
  call of the same function is refused at once (``LearnerCodeTimeout`` with
  ``still_running_from_before``), so each rerun of the page does not start one
  more endless loop.
"""
from __future__ import annotations

import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable

from lessons.engine.errors import LabError
from lessons.engine.paths import relative_to_project

from dashboard.logic.friendly import _is_lesson_file

# Calls that outran their limit and are still running: name -> thread. Shared by every session of the dashboard.
_running_late: dict[str, threading.Thread] = {}
_lock = threading.Lock()


class LearnerCodeTimeout(LabError):
    """A learner function did not return within its time limit (it may still be running).

    Attributes:
        function: the function's name, e.g. ``stage2_data.load_recipes``.
        timeout_s: the limit it outran, in seconds.
        location: ``file:line: code`` where it was busy when the limit passed.
        still_running_from_before: refused at once, because an earlier call of it is still running.
    """

    def __init__(self, function: str, timeout_s: float, *, location: str = "",
                 still_running_from_before: bool = False):
        self.function, self.timeout_s = function, timeout_s
        self.location, self.still_running_from_before = location, still_running_from_before
        if still_running_from_before:
            message = (f"{function} is still running from an earlier try that outran its limit, "
                       "so it was not started again")
        else:
            message = f"{function} did not finish within {timeout_s:g} s"
        super().__init__(message)


def function_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{getattr(fn, '__qualname__', repr(fn))}" if module else repr(fn)


def where_busy(thread: threading.Thread, fn: Callable) -> str:
    """``file:line: code`` of the deepest frame ``thread`` is running now in a lesson file (or ``fn``'s own file).

    Else (busy in a library, say) the line where ``fn`` starts.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    code = getattr(fn, "__code__", None)
    own_file = Path(code.co_filename).resolve() if code else None
    found = None
    for summary in traceback.extract_stack(frame) if frame is not None else []:
        path = Path(summary.filename).resolve()
        if _is_lesson_file(path) or path == own_file:  # the learner's files, or the file fn was written in
            found = summary
    if found is not None:
        return f"{relative_to_project(found.filename)}:{found.lineno}: {(found.line or '').strip()}"
    return f"{relative_to_project(code.co_filename)}:{code.co_firstlineno}" if code else ""


def still_running(name: str) -> bool:
    with _lock:
        thread = _running_late.get(name)
        if thread is not None and not thread.is_alive():
            del _running_late[name]
            return False
        return thread is not None


def call_with_time_limit(fn: Callable, *args: Any, timeout_s: float,
                         prepare_thread: Callable[[threading.Thread], Any] | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or ``LearnerCodeTimeout`` once ``timeout_s`` seconds pass without an answer.

    Whatever ``fn`` raises is raised here, with its own traceback (so the file and line are the learner's).

    Args:
        prepare_thread: called with the worker thread before it starts; the dashboard hands it
            Streamlit's script context there, so caches and spinners inside ``fn`` work; default none.
    """
    name = function_name(fn)
    if still_running(name):
        raise LearnerCodeTimeout(name, timeout_s, still_running_from_before=True)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed to the waiting page as it is
            outcome["error"] = error

    thread = threading.Thread(target=work, name=f"learner-code {name}", daemon=True)
    if prepare_thread is not None:
        prepare_thread(thread)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        location = where_busy(thread, fn)
        with _lock:
            _running_late[name] = thread
        raise LearnerCodeTimeout(name, timeout_s, location=location) from None
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
