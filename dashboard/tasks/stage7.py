"""Stage 7's tasks: the learner's file loaded, cleaned, formatted and split with their own functions.

What is slow or large (the rows read, the cleaned rows) stays in the worker,
keyed by the lesson file's version, the data file's path, modification time and
size, so a page interaction reuses them and a saved file is read again; the page
gets counts, reports and a few examples. The file's size is checked before the
learner's loader reads it (``own_files.check_size``), and its columns against
the template before anything is cleaned (``template_columns``).
"""
from __future__ import annotations

import os

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from lessons.engine import own_files


def _stamp(path: str) -> tuple:
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def _rows(ref: LessonRef, path: str) -> list[dict]:
    own_files.check_size(path)  # from stat, before learner code reads a byte: uploads/ has no 200 MB cap
    return worker.remember(("own rows", ref.path, ref.fingerprint, _stamp(path)),
                           lambda: worker.lesson(ref).load_own_dataset(path))


def _clean(ref: LessonRef, path: str, fields: list[str]) -> tuple[list[dict], dict]:
    return worker.remember(("own clean", ref.path, ref.fingerprint, _stamp(path), tuple(fields)),
                           lambda: worker.lesson(ref).clean_examples(_rows(ref, path), text_fields=list(fields)))


def load(ref: LessonRef, path: str) -> dict:
    """Task: ``load_own_dataset``: how many rows, their columns, and the lesson's default template."""
    rows = _rows(ref, path)
    return {"count": len(rows), "columns": [str(column) for column in rows[0]] if rows else [],
            "template": str(getattr(worker.lesson(ref), "QA_TEMPLATE", "{text}\n[END]"))}


def template_fields(ref: LessonRef, template: str) -> list[str]:
    return [str(field) for field in worker.lesson(ref).template_fields(template)]


def template_columns(ref: LessonRef, path: str, template: str) -> list[str]:
    """Task: the template's fields, once the file is known to have them all (a ``DatasetError`` listing both if not)."""
    fields = template_fields(ref, template)
    own_files.check_columns(_rows(ref, path), fields, path)
    return fields


def clean(ref: LessonRef, path: str, fields: list[str]) -> dict:
    """Task: ``clean_examples``: its report, how many rows it kept."""
    rows, report = _clean(ref, path, fields)
    return {"count": len(rows), "report": plain(report)}


def formatted(ref: LessonRef, path: str, fields: list[str], template: str) -> dict:
    """Task: the first clean row through ``format_example`` and ``prompt_for``."""
    rows, _ = _clean(ref, path, fields)
    module = worker.lesson(ref)
    return {"text": str(module.format_example(rows[0], template)), "prompt": str(module.prompt_for(rows[0], template))}


def splits(ref: LessonRef, path: str, fields: list[str], template: str) -> dict:
    rows, _ = _clean(ref, path, fields)
    result = worker.lesson(ref).prepare_own_splits(rows, template)
    return {"train": len(result["train"]), "validation": len(result["validation"])}


def comparison_prompts(ref: LessonRef, path: str, fields: list[str], template: str) -> list[dict]:
    rows, _ = _clean(ref, path, fields)
    return plain(worker.lesson(ref).comparison_prompts(rows, template))
