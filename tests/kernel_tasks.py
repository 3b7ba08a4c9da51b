"""Tasks for the kernel's own tests (tests/test_dashboard_kernel.py): each misbehaves in one way learner code can."""
from __future__ import annotations

import os
import subprocess
import sys

from dashboard.logic import worker


def add(a, b):
    return a + b


def whoami() -> int:
    return os.getpid()


def call_lesson(ref, function: str, *args):
    """``function(*args)`` from the planted lesson file ``ref``: the learner's code, as a page task calls it."""
    return getattr(worker.lesson(ref), function)(*args)


def count_loads(ref) -> int:
    """How many times the worker made the 'model' of ``ref`` (kept in the model group: once)."""
    return worker.remember(("loads", ref.fingerprint), lambda: worker.lesson(ref).load(), group="model")


def start_a_child() -> int:
    """A process of the worker's own (as a DataLoader worker would be): it must die with the worker."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    return child.pid


def print_a_lot(megabytes: int) -> str:
    line = "x" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        print(line, end="")
    return "printed"


def crash() -> None:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV


def give_back_an_object():
    return worker  # a module: not plain data
