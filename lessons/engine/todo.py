"""The runtime of a learner file's TODOs and blanks.

A learner file is generated from the reference solution (see ``blanks.py``):

* a TODO region becomes ``raise todo()``;
* a blank inside a line becomes ``___``, as in ``model = ___.from_pretrained(path)``.

Both stop the program with the same kind of error, which names the file and
line to open, so a learner never has to read a traceback to know what to do:

    NotImplementedYet: not implemented yet — open lessons/stage1_concepts.py:88 (load_model_and_tokenizer)
"""
from __future__ import annotations

import sys
from pathlib import Path

from .paths import relative_to_project

_ENGINE_DIR = Path(__file__).resolve().parent


class NotImplementedYet(NotImplementedError):
    """Raised by a TODO or blank the learner has not filled in yet."""

    def __init__(self, filename: str, line: int, function: str, what: str = "not implemented yet"):
        self.filename, self.line, self.function = filename, line, function
        super().__init__(f"{what} — open {filename}:{line} ({function})")


def _learner_frame(depth: int):
    """The nearest calling frame outside the engine and outside libraries."""
    frame = sys._getframe(depth)
    first = frame
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if path.suffix == ".py" and not _is_library(path) and path.parent != _ENGINE_DIR:
            return frame
        frame = frame.f_back
    return first


def _is_library(path: Path) -> bool:
    """Standard library, site-packages or the virtual environment: not learner code."""
    return "site-packages" in path.parts or any(
        str(path).startswith(str(Path(prefix).resolve()) + "/lib") for prefix in (sys.prefix, sys.base_prefix))


def todo() -> NotImplementedYet:
    """The error for an unfilled TODO; the learner file says ``raise todo()``."""
    frame = _learner_frame(2)
    return NotImplementedYet(relative_to_project(frame.f_code.co_filename), frame.f_lineno, frame.f_code.co_name)


class _Blank:
    """``___``: a blank still to fill. Anything done with it raises NotImplementedYet.

    It parses wherever an expression may stand, so the learner file imports
    and the other functions in it can be tried before this one is finished.
    """

    def _fail(self, *args, **kwargs):
        # From here: _learner_frame, _fail, then either the learner's line (``___(x)``, ``___ + 1``) or
        # __getattr__ (``___.attr``), an engine frame that _learner_frame skips. Start at 2 for both.
        frame = _learner_frame(2)
        raise NotImplementedYet(relative_to_project(frame.f_code.co_filename), frame.f_lineno,
                                frame.f_code.co_name, what="blank ___ not filled in yet")

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # keep copy, pickle and friends working
        self._fail()

    def __repr__(self):
        return "___"

    __call__ = __bool__ = __len__ = __iter__ = __getitem__ = __contains__ = _fail
    __index__ = __int__ = __float__ = __neg__ = __pos__ = __abs__ = _fail
    for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul",
                "and", "or", "xor", "lt", "le", "gt", "ge", "eq", "ne"):
        locals()[f"__{_op}__"] = _fail
        locals()[f"__r{_op}__"] = _fail
    del _op
    __hash__ = object.__hash__


___ = _Blank()
