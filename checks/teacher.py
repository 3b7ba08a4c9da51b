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

import difflib
import inspect
import traceback
from pathlib import Path
from typing import Any, Callable

from lessons.engine.paths import relative_to_project
from lessons.engine.todo import NotImplementedYet


class CheckFailed(AssertionError):
    """A check that did not pass; its message is all the learner needs to read."""


class CheckTimedOut(Exception):
    """Learner code ran past the time limit of one check (raised by the harness's alarm, wherever the code was)."""


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


def compare_lines(expected: str, got: str, limit: int = 24) -> list[str]:
    """Two texts line by line, each line as Python writes it, so a missing space or newline shows::

        expected and got, line by line (- expected, + got):
            'RECIPE: Toast\\n'
          - '[END]'
          + '[END] '
    """
    lines = ["  expected and got, line by line (- expected, + got):"]
    for row in difflib.ndiff(expected.splitlines(keepends=True), got.splitlines(keepends=True)):
        if row[0] in " -+":
            lines.append(f"    {row[0] if row[0] != ' ' else ' '} {short(row[2:], 200)}")
    if len(lines) > limit + 1:
        lines = lines[:limit + 1] + [f"    … ({len(lines) - limit - 1} more lines)"]
    return lines


def fail(function: Callable, problem: str, *, expected: Any = None, got: Any = None, hint: str = "",
         show_got: bool = True) -> None:
    """Stop the check with a teacher's message about ``function``.

    A text ``expected`` beside a text ``got`` is printed the same way as it (both as Python writes
    them, or line by line when either has several lines); beside any other ``got`` it is a
    description, printed as it is.
    """
    name = getattr(inspect.unwrap(function), "__name__", "?")
    lines = [f"{name}: {problem}"]
    both_text = show_got and isinstance(expected, str) and isinstance(got, str)
    if both_text and ("\n" in expected or "\n" in got):
        lines += compare_lines(expected, got)
    else:
        if expected is not None:
            lines.append(f"  expected: {short(expected) if both_text or not isinstance(expected, str) else expected}")
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
    except (NotImplementedYet, CheckFailed, CheckTimedOut):
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
