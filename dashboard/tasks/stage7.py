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
from dashboard.logic.own_dataset import propose_template, text_columns
from dashboard.tasks import plain
from lessons.engine import own_files


def _stamp(path: str) -> tuple:
    stat = os.stat(path)
    return path, stat.st_mtime_ns, stat.st_size


def _rows(ref: LessonRef, path: str) -> list[dict]:
    own_files.check_size(path)  # from stat, before learner code reads a byte: uploads/ has no 200 MB cap
    return worker.remember(("own rows", ref.path, ref.fingerprint, _stamp(path)),
                           lambda: worker.lesson(ref).load_own_dataset(path))


def _min_chars(min_chars: int | None) -> dict:
    """``clean_examples``'s ``min_chars`` when the page chose one; none, for the lesson's own default."""
    return {} if min_chars is None else {"min_chars": int(min_chars)}


def _clean(ref: LessonRef, path: str, fields: list[str], min_chars: int | None = None) -> tuple[list[dict], dict]:
    return worker.remember(("own clean", ref.path, ref.fingerprint, _stamp(path), tuple(fields), min_chars),
                           lambda: worker.lesson(ref).clean_examples(_rows(ref, path), text_fields=list(fields),
                                                                     **_min_chars(min_chars)))


def load(ref: LessonRef, path: str) -> dict:
    """Task: ``load_own_dataset``: how many rows, their columns, a template for them and the lesson's
    shortest field (``MIN_CHARS``)."""
    rows = _rows(ref, path)
    module = worker.lesson(ref)
    default = str(getattr(module, "QA_TEMPLATE", "{text}\n[END]"))
    return {"count": len(rows), "columns": [str(column) for column in rows[0]] if rows else [],
            "template": propose_template(text_columns(rows), default),
            "min_chars": int(getattr(module, "MIN_CHARS", 10))}


def template_fields(ref: LessonRef, template: str) -> list[str]:
    return [str(field) for field in worker.lesson(ref).template_fields(template)]


def template_columns(ref: LessonRef, path: str, template: str) -> list[str]:
    """Task: the template's fields, once the file is known to have them all (a ``DatasetError`` listing both if not)."""
    fields = template_fields(ref, template)
    own_files.check_columns(_rows(ref, path), fields, path)
    return fields


def clean(ref: LessonRef, path: str, fields: list[str], min_chars: int | None = None) -> dict:
    """Task: ``clean_examples``: its report, how many rows it kept."""
    rows, report = _clean(ref, path, fields, min_chars)
    return {"count": len(rows), "report": plain(report)}


def removed_blank_or_short(ref: LessonRef, path: str, fields: list[str], min_chars: int | None = None,
                           *, most: int = 200) -> list[dict]:
    """Task: the first ``most`` rows ``clean_examples`` removes as blank or too short, each with its shortest field.

    Each row goes through the learner's ``clean_examples`` on its own (whether a row is blank or too short
    does not depend on the others), so the page can list every such row, not only the report's examples.
    """
    def listed() -> list[dict]:
        module = worker.lesson(ref)
        removed = []
        for index, row in enumerate(_rows(ref, path)):
            kept, report = module.clean_examples([row], text_fields=list(fields), **_min_chars(min_chars))
            reason = next((name for name in ("blank", "too_short") if report["removed"].get(name)), None)
            if kept or reason is None:
                continue
            lengths = {field: len(module.repair_text(row.get(field))["whitespace"]) for field in fields}
            shortest = min(lengths, key=lengths.get)
            removed.append({"row": index + 1, "reason": reason, "field": shortest, "shortest": lengths[shortest],
                            "text": " · ".join(str(row.get(field, ""))[:60] for field in fields)})
            if len(removed) >= most:
                break
        return removed

    # Kept like the cleaned rows: a page interaction does not run the learner's code on every row again.
    return worker.remember(("own removed", ref.path, ref.fingerprint, _stamp(path), tuple(fields), min_chars, most),
                           listed)


def formatted(ref: LessonRef, path: str, fields: list[str], template: str, min_chars: int | None = None) -> dict:
    """Task: the first clean row through ``format_example`` and ``prompt_for``."""
    rows, _ = _clean(ref, path, fields, min_chars)
    module = worker.lesson(ref)
    return {"text": str(module.format_example(rows[0], template)), "prompt": str(module.prompt_for(rows[0], template))}


def splits(ref: LessonRef, path: str, fields: list[str], template: str, min_chars: int | None = None) -> dict:
    rows, _ = _clean(ref, path, fields, min_chars)
    result = worker.lesson(ref).prepare_own_splits(rows, template)
    return {"train": len(result["train"]), "validation": len(result["validation"])}


def comparison_prompts(ref: LessonRef, path: str, fields: list[str], template: str,
                       min_chars: int | None = None) -> list[dict]:
    rows, _ = _clean(ref, path, fields, min_chars)
    return plain(worker.lesson(ref).comparison_prompts(rows, template))
