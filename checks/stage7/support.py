"""What the stage 7 checks share: the example data, as Python reads it without your code, and error catching."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

from checks.teacher import fail, learner_frame
from lessons.engine.errors import DatasetError
from lessons.engine.paths import DATA_DIR, relative_to_project
from lessons.engine.todo import NotImplementedYet

EXAMPLE_DIR = DATA_DIR / "own_dataset"
EXAMPLE_STEM = "kitchen_safety"
TEXT_FIELDS = ["question", "answer"]
QA_TEMPLATE = "QUESTION: {question}\nANSWER: {answer}\n[END]"

# What cleaning the example data must do: the table in data/own_dataset/README.md
# (tests/test_own_dataset_files.py proves the README, these numbers and the reference agree).
EXAMPLE_COUNTS = {
    "rows_in": 49,
    "rows_out": 36,
    "repaired": {"mojibake": 6, "html_entities": 5, "control_characters": 0, "whitespace": 7},
    "removed": {"blank": 3, "too_short": 3, "duplicate": 7},
}


def example_rows() -> list[dict]:
    """The 49 rows of the example data, read with the json module alone (so your loader cannot spoil them)."""
    lines = (EXAMPLE_DIR / f"{EXAMPLE_STEM}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def dataset_error(function, *args, expected: str, hint: str = "", **kwargs) -> DatasetError:
    """Call ``function``, which must raise a ``DatasetError``; return it, or fail like a teacher."""
    try:
        result = function(*args, **kwargs)
    except NotImplementedYet:
        raise
    except DatasetError as error:
        return error
    except Exception as error:  # noqa: BLE001 - any other error is the learner's to fix
        source = str(Path(inspect.getsourcefile(inspect.unwrap(function)) or "").resolve())
        frame = learner_frame(error.__traceback__, {source})
        at = f" (at {relative_to_project(frame.filename)}:{frame.lineno}: {frame.line})" if frame else ""
        fail(function, f"{expected}: it should raise a DatasetError, not {type(error).__name__}{at}.",
             expected="DatasetError(path, problem, row=..., hint=...)", got=f"{type(error).__name__}: {error}",
             hint=hint or "Catch the library's error and raise DatasetError(path, problem, row=..., hint=...) "
                          "so the message names the file and the row.")
    fail(function, f"{expected}: it returned instead of raising a DatasetError.",
         expected="DatasetError(path, problem, row=..., hint=...)", got=result, hint=hint)
