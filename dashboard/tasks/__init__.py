"""Tasks: what the pages ask the worker process to do (``dashboard.logic.kernel``), one module per stage page.

A task is a plain function. Its arguments are plain (a ``LessonRef`` naming a
lesson file, strings, numbers, lists, dicts) and so is its answer (dicts,
lists, numbers, text), because both travel between processes. It runs the
learner's functions on what the worker keeps (``worker.lesson``,
``worker.remember``: models, recipes, splits) and hands back only what the page
draws. Nothing here imports torch or transformers at the top: the server imports
these modules too, to name the tasks it sends.
"""
from __future__ import annotations

from typing import Any


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
