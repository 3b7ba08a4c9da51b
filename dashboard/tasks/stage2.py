"""Stage 2's tasks: the learner's ``load_recipes`` once per file version and source (kept), then what the page draws."""
from __future__ import annotations

from dashboard.logic import stage_data, worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain


def _raw(ref: LessonRef, source: str) -> list[dict]:
    return worker.remember(("raw recipes", ref.path, ref.fingerprint, source),
                           lambda: worker.lesson(ref).load_recipes(source))


def overview(ref: LessonRef, source: str) -> dict:
    """Task: how many recipes ``load_recipes`` read, and the first with markup (the page's first example)."""
    raw = _raw(ref, source)
    return {"count": len(raw), "messy": stage_data.messy_example(raw) if raw else 0}


def mess_report(ref: LessonRef, source: str) -> dict:
    return plain(worker.remember(("mess report", ref.path, ref.fingerprint, source),
                                 lambda: worker.lesson(ref).data_mess_report(_raw(ref, source))))


def recipe(ref: LessonRef, source: str, index: int) -> dict:
    """Task: one raw recipe, as ``load_recipes`` returned it."""
    return plain(_raw(ref, source)[index])


def format_recipe(ref: LessonRef, source: str, index: int) -> str:
    return str(worker.lesson(ref).format_recipe(_raw(ref, source)[index])["text"])


def recipe_checks(ref: LessonRef, source: str, index: int) -> dict:
    return plain(worker.lesson(ref).recipe_checks(_raw(ref, source)[index]))


def split(ref: LessonRef, source: str, n_recipes: int, test_size: float, *, seed: int = 42, samples: int = 3) -> dict:
    """Task: ``prepare_splits``: the sizes, the titles in both splits (a leak), the first training examples."""
    def make() -> dict:
        splits = worker.lesson(ref).prepare_splits(_raw(ref, source), n_recipes=n_recipes, test_size=test_size,
                                                   seed=seed)
        train = splits["train"]
        first = train.select(range(min(samples, len(train))))
        return {"train": len(train), "validation": len(splits["validation"]),
                "leaks": stage_data.split_overlap(splits), "first_text": str(train[0]["text"]) if len(train) else "",
                "samples": [{"title": str(row.get("title", "")), "text": str(row["text"])} for row in first]}

    return worker.remember(("splits", ref.path, ref.fingerprint, source, n_recipes, test_size, seed, samples), make)
