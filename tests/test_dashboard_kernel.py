"""The kernel: learner code runs in a worker process that the server can stop, and whatever it does, the server stays.

No browser and no Streamlit: a ``Kernel`` runs the tasks of ``tests/kernel_tasks.py``
on a lesson file planted in a temporary folder, in the ways learner code goes
wrong — it raises, calls ``os._exit(0)`` or ``sys.exit(0)``, never returns,
crashes, prints without end. After each, the worker is really gone (or still
there, when it should be) and the next call works.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dashboard.logic.kernel import Kernel, OutputTail, TaskFailed, lesson_ref, plain_loads, where_in_dump
from lessons.engine.jobs import pid_alive
from tests import kernel_tasks as tasks

ROOT = Path(__file__).resolve().parents[1]

LESSON = textwrap.dedent('''\
    import os
    import sys


    def load():
        return 1


    def broken():
        return {}["missing"]


    def hard_exit():
        os._exit(0)


    def soft_exit():
        sys.exit(0)


    def interrupt():
        raise KeyboardInterrupt


    def spin():
        while True:
            pass


    class Thing:
        pass


    def thing():
        return Thing()
    ''')


def line_of(text: str) -> int:
    return next(number for number, line in enumerate(LESSON.splitlines(), start=1) if text in line)


@pytest.fixture
def planted(tmp_path):
    """A learner's stage 1 file with every mistake in it, where no lesson file lives."""
    path = tmp_path / "stage1_planted.py"
    path.write_text(LESSON)
    return lesson_ref("stage1", path)


@pytest.fixture
def kernel():
    kernel = Kernel()
    yield kernel
    kernel.stop()


def gone(pid: int) -> bool:
    """The process has ended and been reaped (or is a zombie): ``os.kill(pid, 0)`` finds nothing running."""
    return not pid_alive(pid)


def test_a_task_returns_and_the_worker_stays_for_the_next(kernel):
    assert kernel.call(tasks.add, 2, b=3, timeout_s=60) == 5
    pid = kernel.call(tasks.whoami, timeout_s=10)
    assert pid == kernel.pid and pid != os.getpid()
    started = time.perf_counter()
    for _ in range(50):
        kernel.call(tasks.add, 1, 1, timeout_s=10)
    per_call_ms = (time.perf_counter() - started) / 50 * 1000
    print(f"round trip of a task call: {per_call_ms:.2f} ms")  # a measurement, not a pass/fail line
    assert kernel.call(tasks.whoami, timeout_s=10) == pid, "one worker for every call"


def test_the_worker_keeps_what_a_task_made_once_per_file_version(kernel, planted):
    assert kernel.call(tasks.count_loads, planted, timeout_s=60) == 1
    assert kernel.call(tasks.count_loads, planted, timeout_s=60) == 1
    held = kernel.call("dashboard.logic.worker:held", timeout_s=10)
    assert any(name.startswith("stage1_planted.py@") for name in held["modules"])


def test_an_exception_comes_back_with_the_learners_file_and_line(kernel, planted):
    with pytest.raises(TaskFailed) as failed:
        kernel.call(tasks.call_lesson, planted, "broken", timeout_s=60, doing="trying broken")
    problem = failed.value.problem
    assert failed.value.kind == "error" and not failed.value.offers_restart
    assert problem.headline == "While trying broken: your code raised KeyError: 'missing'"
    assert problem.location.endswith(f"stage1_planted.py:{line_of('missing')}: return {{}}[\"missing\"]")
    assert "Traceback" in problem.details
    pid = kernel.pid
    assert kernel.call(tasks.add, 1, 2, timeout_s=10) == 3 and kernel.pid == pid, "the worker is still the same"


@pytest.mark.parametrize(("function", "said"), [("soft_exit", "sys.exit(0)"), ("interrupt", "KeyboardInterrupt")])
def test_sys_exit_and_keyboard_interrupt_are_reported_and_the_worker_survives(kernel, planted, function, said):
    kernel.call(tasks.add, 0, 0, timeout_s=60)
    pid = kernel.pid
    with pytest.raises(TaskFailed) as failed:
        kernel.call(tasks.call_lesson, planted, function, timeout_s=60)
    assert failed.value.kind == "error"
    assert said in failed.value.problem.headline and "would end the whole program" in failed.value.problem.headline
    assert "stage1_planted.py:" in failed.value.problem.location
    assert kernel.call(tasks.add, 1, 1, timeout_s=10) == 2 and kernel.pid == pid


def test_os_exit_is_reported_with_its_line_and_the_next_call_gets_a_fresh_worker(kernel, planted):
    first = kernel.call(tasks.whoami, timeout_s=60)
    with pytest.raises(TaskFailed) as failed:
        kernel.call(tasks.call_lesson, planted, "hard_exit", timeout_s=60, doing="trying hard_exit")
    problem = failed.value.problem
    assert failed.value.kind == "died" and failed.value.offers_restart
    assert problem.headline == ("While trying hard_exit: your code called os._exit(0), which ended the worker "
                                "process that runs it.")
    assert problem.location.endswith(f"stage1_planted.py:{line_of('os._exit')}: os._exit(0)")
    assert "The dashboard itself is fine" in problem.hint
    assert gone(first)
    second = kernel.call(tasks.whoami, timeout_s=60)
    assert second != first and pid_alive(second)


def test_a_hang_is_stopped_at_its_limit_its_processes_are_gone_and_the_next_call_works(kernel, planted):
    child = kernel.call(tasks.start_a_child, timeout_s=60)
    worker = kernel.pid
    started = time.monotonic()
    with pytest.raises(TaskFailed) as failed:
        kernel.call(tasks.call_lesson, planted, "spin", timeout_s=2, doing="trying spin")
    elapsed = time.monotonic() - started
    problem = failed.value.problem
    assert failed.value.kind == "timeout" and failed.value.offers_restart
    assert 2 <= elapsed < 2 + 5, f"stopped after {elapsed:.1f} s"
    assert problem.headline.startswith("While trying spin: your code did not finish within 2 s")
    assert any(problem.location.endswith(f"stage1_planted.py:{line_of(code)}: {code}")  # the loop's two lines
               for code in ("while True:", "pass")), problem.location
    deadline = time.monotonic() + 5
    while not (gone(worker) and gone(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(worker), "the worker that spun was killed"
    assert gone(child), "and the process it had started with it (its process group)"

    with pytest.raises(TaskFailed) as again:  # the same call on the same file: not waited out a second time
        kernel.call(tasks.call_lesson, planted, "spin", timeout_s=2, doing="trying spin")
    assert again.value.kind == "refused" and "same version of your file" in again.value.problem.headline
    assert kernel.call(tasks.add, 2, 2, timeout_s=60) == 4, "other calls run, on a fresh worker"
    assert kernel.pid != worker
    kernel.restart()
    with pytest.raises(TaskFailed) as after_restart:  # after a restart it is given its chance again
        kernel.call(tasks.call_lesson, planted, "spin", timeout_s=1)
    assert after_restart.value.kind == "timeout"


def test_a_crash_is_reported_by_its_signal(kernel):
    with pytest.raises(TaskFailed) as failed:
        kernel.call(tasks.crash, timeout_s=60)
    assert failed.value.kind == "died"
    assert "SIGSEGV: a segmentation fault" in failed.value.problem.headline
    assert kernel.call(tasks.add, 1, 1, timeout_s=60) == 2


def test_printing_without_end_fills_neither_the_servers_memory_nor_its_terminal():
    kernel = Kernel(output_limit=10_000)
    try:
        assert kernel.call(tasks.print_a_lot, 5, timeout_s=60) == "printed"  # 5 MB of prints
        worker = kernel._worker
        time.sleep(0.3)
        assert worker.output.total >= 5 * 1024 * 1024 and worker.output.size() <= 10_000
    finally:
        kernel.stop()


def test_an_answer_that_is_not_plain_data_is_refused(kernel, planted):
    with pytest.raises(TaskFailed) as learner_class:
        kernel.call(tasks.call_lesson, planted, "thing", timeout_s=60)
    assert "cannot receive" in learner_class.value.problem.headline
    with pytest.raises(TaskFailed) as module:
        kernel.call(tasks.give_back_an_object, timeout_s=60)
    assert "cannot receive" in module.value.problem.headline
    assert not [name for name in sys.modules if "stage1_planted" in name], "never imported in the server"

    import pickle

    import numpy as np

    assert plain_loads(pickle.dumps({"a": [1, 2.5, "x", None], "b": np.arange(3)}))["b"].tolist() == [0, 1, 2]
    with pytest.raises(pickle.UnpicklingError):
        plain_loads(pickle.dumps(Path("x")))  # any class outside the allow-list is never imported


def test_the_worker_ends_when_its_server_is_killed(tmp_path):
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent('''\
        import os, sys
        from dashboard.logic.kernel import Kernel
        kernel = Kernel()
        kernel.call("tests.kernel_tasks:add", 1, 1, timeout_s=60)
        print(kernel.pid, flush=True)
        os.kill(os.getpid(), 9)
        '''))
    out = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while pid_alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(worker), "a worker never outlives its dashboard"


def test_output_tail_and_the_stack_dump_reader():
    tail = OutputTail(8)
    tail.write(b"hello ")
    mark = tail.total
    tail.write(b"world, again")
    assert tail.size() == 8 and tail.since(mark) == "[… 4 bytes left out …]\nd, again"
    assert tail.since(tail.total) == ""
    dump = ('Thread 0x0000000000000abc (most recent call first):\n'
            '  File "/usr/lib/python3.11/threading.py", line 320 in wait\n\n'
            'Current thread 0x0000000000000def (most recent call first):\n'
            f'  File "{ROOT}/lessons/reference/stage1_concepts.py", line 95 in count_parameters\n'
            f'  File "{ROOT}/dashboard/logic/worker.py", line 10 in serve\n')
    assert where_in_dump(dump, set(), 0xdef).startswith("lessons/reference/stage1_concepts.py:95")
    assert where_in_dump(dump, set(), None).startswith("lessons/reference/stage1_concepts.py:95")
    assert where_in_dump("nothing", set(), None) == ""
