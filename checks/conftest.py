"""The harness under every stage's checks.

* ``.venv/bin/python -m pytest checks/stage3`` checks your ``lessons/stage3_tokenize.py``;
  ``--reference`` checks the reference solution instead (never counted as your progress).
* The checks run in a worker process that ``checks/supervisor.py`` watches: a
  check that hangs is stopped after ``--check-timeout`` seconds, first by the
  worker itself (with the line your code was on), and if your code switched that
  off, by the supervisor killing the worker. Nothing your code does can keep
  the run from ending.
* The fixture ``lesson`` is your module, loaded from its file, so each stage is
  checked alone: a bug in stage 2 cannot fail stage 3. The bytes it imported
  are hashed at that moment: the run counts for that content only.
* A TODO you have not filled in fails with one line ("not implemented yet —
  open FILE:LINE"), never a traceback.
* When a run ends, the supervisor records it in the lab's store; the dashboard
  opens the next stage when every check of the stage (``checks/registry.json``,
  not what one run collected) passed on the file as it is now.
"""
from __future__ import annotations

import faulthandler
import importlib.util
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import pytest

from checks.runlog import EventReader, EventWriter, cut
from checks.supervisor import EVENTS_ENV, STACKS_ENV, finish, supervise
from checks.teacher import CheckFailed, CheckTimedOut, learner_frame
from lessons.engine.errors import LabError
from lessons.engine.limits import LIMITS
from lessons.engine.paths import relative_to_project
from lessons.engine.registry import check_name
from lessons.engine.stages import STAGES_BY_KEY, Stage, content_hash
from lessons.engine.todo import NotImplementedYet

DEFAULT_TIMEOUT_S = LIMITS.check_timeout_s
# Library progress bars (saving a tiny model...) would only clutter a failure's report.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def pytest_addoption(parser):
    group = parser.getgroup("lora-kitchen")
    group.addoption("--reference", action="store_true",
                    help="check the reference solution (lessons/reference/) instead of your file")
    group.addoption("--lesson-file", default=None,
                    help="check this file instead of lessons/stageN_*.py (the project's tests use it)")
    group.addoption("--no-record", action="store_true", help="do not save the results in the lab's store")
    group.addoption("--check-timeout", type=float, default=DEFAULT_TIMEOUT_S,
                    help=f"seconds one check may run before it is stopped (default {DEFAULT_TIMEOUT_S})")
    group.addoption("--report-json", default=None, help="also write each check's outcome and message here")


def _stage_of(path: Path) -> Stage | None:
    for part in Path(path).resolve().parts[::-1]:
        if part in STAGES_BY_KEY:
            return STAGES_BY_KEY[part]
    return None


def lesson_file(config, stage: Stage) -> Path:
    if config.getoption("--lesson-file"):
        return Path(config.getoption("--lesson-file")).resolve()
    return stage.reference_file if config.getoption("--reference") else stage.learner_file


_loaded: dict[Path, object] = {}


def _load(path: Path, stage: Stage):
    if path in _loaded:
        return _loaded[path]
    if not path.exists():
        if path.parent.name == "reference":
            raise LabError(f"the reference solution {relative_to_project(path)} is not in this copy "
                           "(your instructor withheld it): run the checks without --reference.")
        raise LabError(f"{relative_to_project(path)} is missing: run `python -m lessons generate` to make it.")
    source = path.read_bytes()  # hashed and run as read: a file that rewrites itself later counts as it was
    _events.emit("import", stage=stage.key, hash=content_hash(source))
    spec = importlib.util.spec_from_file_location(f"lesson_{stage.key}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the learner's own lesson
    except SyntaxError as error:
        raise LabError(f"Python cannot read {relative_to_project(path)}: {error.msg} at line {error.lineno}:\n"
                       f"    {(error.text or '').rstrip()}\n  hint: look for a missing bracket, colon or quote "
                       "on that line or the one before.") from None
    except NotImplementedYet:
        raise
    except Exception as error:  # noqa: BLE001
        frame = learner_frame(error.__traceback__, {str(path)})
        at = f" at line {frame.lineno}: {frame.line}" if frame else ""
        raise LabError(f"{relative_to_project(path)} fails when it is imported{at}\n"
                       f"  {type(error).__name__}: {error}") from None
    _loaded[path] = module
    return module


@pytest.fixture
def lesson(request):
    """The lesson module under check (yours, or the reference with --reference)."""
    stage = _stage_of(request.path)
    assert stage, f"{request.path} is not inside a checks/stageN folder"
    return _load(lesson_file(request.config, stage), stage)


# -- tiny models with the real tokenizer --------------------------------------------
@pytest.fixture(autouse=True)
def one_thread():
    """Checks run tiny models: their tensors finish before a second thread has started,
    and on a busy machine threads only wait on each other (stage 6: 30 s -> 4 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tokenizer():
    """A fresh copy of SmolLM2's real tokenizer (49,152 tokens)."""
    from lessons.engine.tiny import real_tokenizer

    return real_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    """A 2-layer Llama with the real vocabulary: small so a check runs in a second."""
    from lessons.engine.tiny import tiny_llama

    return tiny_llama(tokenizer, seed=0)


# -- a time limit for learner code ----------------------------------------------------
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    limit = item.config.getoption("--check-timeout")
    marker = item.get_closest_marker("timeout")
    if marker:
        limit = marker.args[0]

    def stop(signum, frame):
        raise CheckTimedOut(f"this check ran longer than {limit:.0f} s and was stopped.\n"
                            "  hint: is there a loop that never ends, or far more work than the task needs?")

    usable = hasattr(signal, "SIGALRM") and limit and limit > 0
    if usable:
        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        if usable:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


# -- failures that read like a teacher -----------------------------------------------
def busy_frame(tb, learner_path: Path, stage: Stage):
    """The line a stopped check was running in the learner's own functions (not a given helper they call)."""
    from lessons.engine.blanks import exercises_for

    own = {exercise.function for exercise in exercises_for(stage.module)}
    frames = [f for f in traceback.extract_tb(tb) if str(Path(f.filename).resolve()) == str(learner_path)]
    mine = [f for f in frames if f.name in own]
    return (mine or frames or [None])[-1]


def friendly_message(excinfo, learner_path: Path | None, stage: Stage | None = None) -> str | None:
    """The words a learner reads for a failure, or None to keep pytest's report."""
    error = excinfo.value
    if isinstance(error, (NotImplementedYet, CheckFailed, LabError)):
        return str(error)
    if isinstance(error, CheckTimedOut):
        frame = busy_frame(excinfo.tb, learner_path, stage) if learner_path and stage else None
        where = f"\n  open:     {relative_to_project(frame.filename)}:{frame.lineno} ({frame.name})" if frame else ""
        return f"{error}{where}"
    if learner_path:
        frame = learner_frame(excinfo.tb, {str(learner_path)})
        if frame:
            folded = "".join(traceback.format_exception_only(type(error), error)).strip()
            return (f"your code raised {folded}\n"
                    f"  at:       {relative_to_project(frame.filename)}:{frame.lineno}: {frame.line}\n"
                    "  hint:     read the error; the line shown is where your code stopped.")
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    stage = _stage_of(item.path)
    report.lk_title = (item.function.__doc__ or "").strip().splitlines()[0] if getattr(item, "function", None) \
        and item.function.__doc__ else item.name
    if call.excinfo is None or stage is None:
        return
    path = lesson_file(item.config, stage)
    message = friendly_message(call.excinfo, path, stage)
    if isinstance(call.excinfo.value, CheckTimedOut):
        _skip_the_rest_of(call.excinfo.tb, path, stage, check_name(item.nodeid))
    elif message is not None and not isinstance(call.excinfo.value, NotImplementedYet):
        message = _once(message, check_name(item.nodeid))
    if message is not None:
        report.longrepr = message
    report.lk_message = message or str(call.excinfo.value)


_first_with: dict[str, str] = {}  # a failure's words (less the call's arguments) -> the check that showed them first


def _once(message: str, check: str) -> str:
    """One bug, one message: a failure already shown by an earlier check is named, not repeated."""
    words = "\n".join(line for line in message.splitlines() if not line.lstrip().startswith("called:"))
    first = _first_with.setdefault(words, check)
    if first == check:
        return message
    return f"same failure as {first} above: {message.splitlines()[0]}"


def _skip_the_rest_of(tb, path: Path, stage: Stage, check: str) -> None:
    """After a time-out, the stage's later checks skip the function that hung instead of waiting again."""
    frame = busy_frame(tb, path, stage)
    module = _loaded.get(path)
    if frame is None or module is None or not callable(getattr(module, frame.name, None)):
        return
    reason = (f"skipped: {frame.name} ran past the time limit in {check} (above); "
              "fix it there, then run the checks again.")

    def hung(*args, **kwargs):
        pytest.skip(reason)

    hung.__name__ = frame.name
    setattr(module, frame.name, hung)


# -- supervision and recording ---------------------------------------------------------
def _interactive_or_listing(config) -> bool:
    """Runs the supervisor leaves alone: help and listings run no learner code, a debugger needs the terminal."""
    option = config.option
    return any(getattr(option, name, False) for name in (
        "help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers", "usepdb", "trace"))


def pytest_cmdline_main(config):
    """The process the learner started becomes the supervisor; the checks run in its worker."""
    if os.environ.get(EVENTS_ENV) or _interactive_or_listing(config):
        return None
    return supervise(config)


class _NoEvents:
    def emit(self, event: str, **fields) -> None:
        pass


_events: EventWriter | _NoEvents = _NoEvents()
_unsupervised_log: Path | None = None


def _die_with_the_supervisor() -> None:
    """Linux: the kernel kills the worker when its supervisor dies (by a timeout's SIGKILL, say)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_events(config) -> None:
    global _events, _unsupervised_log
    path = os.environ.get(EVENTS_ENV)
    if path:
        _die_with_the_supervisor()
        stacks = os.environ.get(STACKS_ENV)
        if stacks and hasattr(signal, "SIGUSR1"):
            faulthandler.register(signal.SIGUSR1, file=open(stacks, "w"), all_threads=True)  # noqa: SIM115
    elif config.option.usepdb or getattr(config.option, "trace", False):  # no supervisor: the log is read back here
        handle, name = tempfile.mkstemp(prefix="lab-checks-", suffix=".jsonl")
        os.close(handle)
        path = _unsupervised_log = Path(name)
    else:
        return  # a listing (--collect-only, --help): no check runs
    _events = EventWriter(path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    stage = _stage_of(item.path)
    if stage:
        marker = item.get_closest_marker("timeout")
        limit = marker.args[0] if marker else item.config.getoption("--check-timeout")
        _events.emit("start", stage=stage.key, name=check_name(item.nodeid), limit=limit, t=time.time())
    yield
    if stage:
        _events.emit("end", stage=stage.key, name=check_name(item.nodeid))


def pytest_runtest_logreport(report):
    stage = _stage_of(Path(report.fspath))
    if stage is None or (report.when != "call" and report.passed):
        return
    outcome = "passed" if report.passed else "skipped" if report.skipped else \
        ("failed" if report.when == "call" else "error")
    message = getattr(report, "lk_message", "") or ("" if report.passed else str(report.longrepr)[-2000:])
    if outcome != "passed" and ("not implemented yet" in message or "not filled in yet" in message):
        outcome = "todo"
    _events.emit("result", stage=stage.key, name=check_name(report.nodeid), title=getattr(report, "lk_title", ""),
                 outcome=outcome, message=cut(message))


def pytest_sessionfinish(session, exitstatus):
    _events.emit("finished", exitstatus=int(exitstatus),
                 stopped_early=bool(session.shouldstop) or bool(session.shouldfail))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _unsupervised_log is None:
        return  # the supervisor prints the summary once the worker has ended
    for line in finish(config, EventReader(_unsupervised_log).poll()):
        terminalreporter.write_line(line, bold=True)
    _unsupervised_log.unlink(missing_ok=True)


def pytest_configure(config):
    _start_events(config)
    config.addinivalue_line("markers", "timeout(seconds): a longer time limit for one check")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
