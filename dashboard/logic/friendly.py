"""An exception from learner code, told like the checks tell it: what, where, what next.

The dashboard never shows a crashed page: a stage's results area runs the
learner's own functions, and whatever they raise becomes one ``FriendlyError``,
drawn as an error box with the file and line to open and the traceback folded away.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from lessons.engine.errors import LabError
from lessons.engine.paths import LESSONS_DIR, PROJECT_ROOT, relative_to_project
from lessons.engine.todo import NotImplementedYet


@dataclass
class FriendlyError:
    headline: str        # one line: what went wrong
    location: str = ""   # lessons/stage2_data.py:131: the line
    hint: str = ""
    details: str = ""    # the full traceback, for the curious

    @property
    def message(self) -> str:
        parts = [self.headline]
        if self.location:
            parts.append(f"at `{self.location}`")  # as code: a page draws the message as markdown
        if self.hint:
            parts.append(self.hint)
        return "\n\n".join(parts)


def is_lesson_file(path: Path, learner_files: Collection[str] = ()) -> bool:
    """A ``lessons/stage*.py`` (or ``lessons/reference/``), or one of ``learner_files`` (absolute paths)."""
    return str(path) in learner_files or (path.suffix == ".py" and path.name.startswith("stage") and path.parent in (
        LESSONS_DIR, LESSONS_DIR / "reference"))


def lesson_frame(error: BaseException, learner_files: Collection[str] = ()) -> traceback.FrameSummary | None:
    """The deepest frame of the traceback inside a lesson file (the learner's code), if any."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        if is_lesson_file(Path(frame.filename).resolve(), learner_files):
            found = frame
    return found


def friendly_error(error: BaseException, *, doing: str = "", learner_files: Collection[str] = ()) -> FriendlyError:
    """Turn an exception into words for the page.

    Args:
        doing: what the page was doing, e.g. ``"tokenizing your text"``; default none.
        learner_files: absolute paths that count as the learner's code besides ``lessons/stage*.py``
            (the file the worker imported for a stage); default none.
    """
    details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    prefix = f"While {doing}: " if doing else ""
    frame = lesson_frame(error, learner_files)
    location = f"{relative_to_project(frame.filename)}:{frame.lineno}: {(frame.line or '').strip()}" if frame else ""
    if isinstance(error, SyntaxError) and error.filename and is_lesson_file(Path(error.filename).resolve(),
                                                                            learner_files):
        location = f"{relative_to_project(error.filename)}:{error.lineno}: {(error.text or '').strip()}"
        return FriendlyError(f"{prefix}your file does not parse: {type(error).__name__}: {error.msg}", location,
                             "Python reads the whole file before it runs any of it: fix the line shown (or the "
                             "one before it) and save.", details)
    if isinstance(error, (SystemExit, KeyboardInterrupt)):
        called = f"sys.exit({error.code!r})" if isinstance(error, SystemExit) else "raise KeyboardInterrupt"
        return FriendlyError(f"{prefix}your code called {called}, which would end the whole program.", location,
                             "A function on a page must return its result. The worker that runs your code caught "
                             "it and is still running; remove the exit and save the file.", details)
    if isinstance(error, NotImplementedYet):
        return FriendlyError(f"{prefix}{error}", f"{error.filename}:{error.line}",
                             "Fill in that TODO, run the checks, and this part of the page comes to life.", details)
    if isinstance(error, LabError):
        return FriendlyError(f"{prefix}{error}", details=details)
    kind = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if frame is not None:
        return FriendlyError(f"{prefix}your code raised {kind}", location,
                             "Read the error; the line shown is where your code stopped. "
                             "The stage's checks may say more: run them.", details)
    project = [f for f in traceback.extract_tb(error.__traceback__)
               if str(Path(f.filename).resolve()).startswith(str(PROJECT_ROOT)) and ".venv" not in f.filename]
    location = f"{relative_to_project(project[-1].filename)}:{project[-1].lineno}" if project else ""
    return FriendlyError(f"{prefix}{kind}", location, "", details)
