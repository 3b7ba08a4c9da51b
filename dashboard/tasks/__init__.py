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

from lessons.engine.store import plain  # noqa: F401 - what a task hands back, as the store keeps it
