"""Stage 7's page helpers that need no Streamlit: a template proposed from a file's columns, and why rows went.

* ``propose_template``: the lesson's template, or the recipes' (``RECIPE_TEMPLATE``), when the file has
  its columns; otherwise one built from the file's text columns (the last one is what the model learns
  to write), ending with ``[END]``;
* ``shortest_keeping_all``: the smallest ``min_chars`` that would keep every row removed as too short,
  so the page can say "lower it to N to keep them" instead of only "Removed 7".

Example::

    >>> propose_template(["tip", "why"], "QUESTION: {question}\\nANSWER: {answer}\\n[END]")
    'TIP: {tip}\\nWHY: {why}\\n[END]'
"""
from __future__ import annotations

import string
from pathlib import Path

from lessons.engine.constants import END_MARKER, RECIPE_TEMPLATE
from lessons.engine.paths import DATA_DIR, lab_home, relative_to_project

UPLOAD_TYPES = ("csv", "json", "jsonl", "ndjson")
SAMPLE_ROWS = 200   # a column's kind is judged on this many rows: enough for a CSV's types, cheap for 100,000


def template_names(template: str) -> list[str]:
    """The ``{field}`` names of ``template``, in order, each once (Python's own format parser)."""
    names: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name and name not in names:
            names.append(name)
    return names


def text_columns(rows: list[dict]) -> list[str]:
    """The columns of ``rows`` that hold text: a string in some sampled row, and not only numbers."""
    columns = [str(column) for column in rows[0]] if rows else []
    sample = rows[:SAMPLE_ROWS]

    def is_text(column: str) -> bool:
        values = [row.get(column) for row in sample]
        strings = [value for value in values if isinstance(value, str) and value.strip()]
        return bool(strings) and not all(value.strip().replace(".", "", 1).lstrip("-").isdigit() for value in strings)

    return [column for column in columns if is_text(column)]


def propose_template(columns: list[str], default: str) -> str:
    """``default`` (else ``RECIPE_TEMPLATE``) when ``columns`` has every field it names; otherwise a
    ``LABEL: {column}`` line per column.

    The last column comes last: ``prompt_for`` cuts the template before its last field, so that field is
    what the model learns to write. Column names become labels in capitals (``cook_time`` → ``COOK TIME``).
    """
    for template in (default, RECIPE_TEMPLATE):
        if not columns or set(template_names(template)) <= set(columns):
            return template
    lines = [f"{column.replace('_', ' ').upper()}: {{{column}}}" for column in columns]
    return "\n".join(lines) + "\n" + END_MARKER


def shortest_keeping_all(removed: list[dict]) -> int | None:
    """The largest ``min_chars`` that keeps every row in ``removed`` (each ``{"reason", "shortest"}``) that was
    too short; None when none was."""
    lengths = [row["shortest"] for row in removed if row["reason"] == "too_short"]
    return min(lengths) if lengths else None


def dataset_choices() -> list[Path]:
    """The example files and the learner's uploads, examples first."""
    examples = sorted((DATA_DIR / "own_dataset").glob("*.*"))
    uploads = sorted((lab_home() / "uploads").glob("*.*")) if (lab_home() / "uploads").exists() else []
    return [path for path in examples + uploads if path.suffix.lstrip(".") in UPLOAD_TYPES]


def dataset_label(path: str) -> str:
    """An example as its place in the project (``data/own_dataset/…``), an upload as ``uploads/NAME``."""
    uploads = lab_home() / "uploads"
    return f"uploads/{Path(path).name}" if Path(path).parent == uploads else relative_to_project(path)


def cleaning_rows(report: dict) -> list[dict]:
    """The cleaning report as bar-chart rows: rows repaired by each step, rows removed for each reason."""
    rows = [{"step": f"repaired: {name.replace('_', ' ')}", "rows": count, "kind": "repaired"}
            for name, count in (report.get("repaired") or {}).items()]
    rows += [{"step": f"removed: {name.replace('_', ' ')}", "rows": count, "kind": "removed"}
             for name, count in (report.get("removed") or {}).items()]
    return rows
