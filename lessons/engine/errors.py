"""Errors that speak to a person: what went wrong, and what to do about it.

Every error the engine raises on purpose is a ``LabError``; the command line,
the checks and the dashboard print its message alone, never a traceback.
"""
from __future__ import annotations


class LabError(Exception):
    """A problem the learner or instructor can fix; the message says how."""


class AssetMissing(LabError):
    """An embedded model or data package is not installed."""


class ModelNotFound(LabError):
    """A model name or path that cannot be loaded here."""


class DatasetError(LabError):
    """A data file that cannot be read: names the file, the row and the problem."""

    def __init__(self, path, problem: str, *, row: int | None = None, hint: str = ""):
        self.path, self.row, self.problem = str(path), row, problem
        where = f"{path}" + (f", row {row}" if row is not None else "")
        message = f"{where}: {problem}"
        if hint:
            message += f"\n  hint: {hint}"
        super().__init__(message)
