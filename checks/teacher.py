"""How a check talks: like a teacher, not like a traceback.

Every failed check says what was expected, what came back, a hint (a question
more often than an answer), and the file and line to open::

    format_recipe: the text must end with the [END] marker.
      expected: text ending in '[END]'
      got:      'RECIPE: Toast\\nINGREDIENTS: bread, butter\\nDIRECTIONS: Toast the bread.'
      hint:     How will the model ever learn where a recipe stops?
      open:     lessons/stage2_data.py:131 (format_recipe)

Check files use ``expect(...)`` instead of ``assert`` and ``call(...)`` to run
learner code, so an exception inside the learner's function is reported with
the line of *their* code that raised it.
"""
from __future__ import annotations

import inspect
import traceback
from pathlib import Path
from typing import Any, Callable

from lessons.engine.paths import relative_to_project
from lessons.engine.todo import NotImplementedYet


class CheckFailed(AssertionError):
    """A check that did not pass; its message is all the learner needs to read."""


def where(function: Callable) -> str:
    """``lessons/stage2_data.py:131 (format_recipe)``: where a learner function is defined."""
    function = inspect.unwrap(function)
    try:
        filename = inspect.getsourcefile(function) or "?"
        line = inspect.getsourcelines(function)[1]
    except (OSError, TypeError):
        return getattr(function, "__name__", "?")
    return f"{relative_to_project(filename)}:{line} ({function.__name__})"


def short(value: Any, limit: int = 300) -> str:
    """A value as the learner would recognise it, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 20] + f" … ({len(text)} characters)"


def fail(function: Callable, problem: str, *, expected: Any = None, got: Any = None, hint: str = "",
         show_got: bool = True) -> None:
    """Stop the check with a teacher's message about ``function``."""
    name = getattr(inspect.unwrap(function), "__name__", "?")
    lines = [f"{name}: {problem}"]
    if expected is not None:
        lines.append(f"  expected: {expected if isinstance(expected, str) else short(expected)}")
    if show_got:
        lines.append(f"  got:      {short(got)}")
    if hint:
        lines.append(f"  hint:     {hint}")
    lines.append(f"  open:     {where(function)}")
    raise CheckFailed("\n".join(lines))


def expect(condition: bool, function: Callable, problem: str, *, expected: Any = None, got: Any = None,
           hint: str = "", show_got: bool = True) -> None:
    """``fail(...)`` unless ``condition`` holds. The check's one way of asserting."""
    if not condition:
        fail(function, problem, expected=expected, got=got, hint=hint, show_got=show_got)


def learner_frame(tb, learner_files: set[str]):
    """The deepest frame of a traceback that lies in a learner's file, or None."""
    found = None
    for frame_summary in traceback.extract_tb(tb):
        if str(Path(frame_summary.filename).resolve()) in learner_files:
            found = frame_summary
    return found


def call(function: Callable, *args, **kwargs) -> Any:
    """Run a learner function; an exception it raises becomes a readable failure.

    ``NotImplementedYet`` passes through untouched: the harness prints its
    one-line message ("not implemented yet — open FILE:LINE").
    """
    try:
        return function(*args, **kwargs)
    except (NotImplementedYet, CheckFailed):
        raise
    except Exception as error:  # noqa: BLE001 - any bug in learner code is reported, not crashed on
        source = inspect.getsourcefile(inspect.unwrap(function)) or ""
        frame = learner_frame(error.__traceback__, {str(Path(source).resolve())})
        at = (f"{relative_to_project(frame.filename)}:{frame.lineno}: {frame.line}" if frame else where(function))
        raise CheckFailed(
            f"{function.__name__} raised {type(error).__name__}: {error}\n"
            f"  at:       {at}\n"
            f"  called:   {function.__name__}({_describe_args(args, kwargs)})\n"
            f"  hint:     read the error above; the line shown is where your code stopped."
        ) from None


def _describe_args(args: tuple, kwargs: dict) -> str:
    parts = [_brief(a) for a in args] + [f"{k}={_brief(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def _brief(value: Any) -> str:
    if isinstance(value, (str, int, float, bool, type(None))):
        return short(value, 60)
    return f"<{type(value).__name__}>"
