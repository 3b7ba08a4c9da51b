"""Stage 3's tasks: the learner's tokenizer configuration (on a copy, kept), token lengths, one padded row.

``configure_tokenizer`` changes what it is given, so it gets a *copy* of the
base tokenizer and a tiny model with the same vocabulary: resizing the tiny
model's embeddings costs nothing, where the real model would be copied.
"""
from __future__ import annotations

import copy

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from dashboard.tasks.shared import base_tokenizer, formatted_recipes


def _configured(ref: LessonRef):
    def make():
        from lessons.engine.tiny import tiny_llama

        tokenizer = copy.deepcopy(base_tokenizer())
        model = tiny_llama(tokenizer)  # same vocabulary and architecture, 2 layers
        return tokenizer, worker.lesson(ref).configure_tokenizer(tokenizer, model)

    return worker.remember(("configured tokenizer", ref.path, ref.fingerprint), make)


def configure(ref: LessonRef) -> dict:
    """Task: what ``configure_tokenizer`` reported, and the configured tokenizer's vocabulary size."""
    tokenizer, report = _configured(ref)
    return {"report": plain(report), "vocab": len(tokenizer)}


def recipes(stage2: LessonRef) -> dict:
    """Task: how many recipes stage 2's code formats, the note when it failed, and the shortest recipe."""
    rows, note = formatted_recipes(stage2)
    shortest = min(rows, key=lambda row: len(row["text"]))["text"] if rows else "RECIPE: Toast\n[END]"
    return {"count": len(rows), "note": note, "shortest": shortest}


def length_stats(ref: LessonRef, stage2: LessonRef, max_length: int) -> dict:
    """Task: ``token_length_stats`` over every formatted recipe (with ``lengths``, one number per recipe)."""
    tokenizer, _ = _configured(ref)
    texts = [row["text"] for row in formatted_recipes(stage2)[0]]
    return plain(worker.remember(("length stats", ref.path, ref.fingerprint, stage2.fingerprint, max_length),
                                 lambda: worker.lesson(ref).token_length_stats(texts, tokenizer, max_length)))


def tokenized_row(ref: LessonRef, text: str, max_length: int) -> dict:
    """Task: ``tokenize_function`` on one text: its ids, its attention mask and each token's text."""
    tokenizer, _ = _configured(ref)
    out = worker.lesson(ref).tokenize_function({"text": [text]}, tokenizer, max_length)
    ids, mask = plain(list(out["input_ids"][0])), plain(list(out["attention_mask"][0]))
    return {"ids": ids, "mask": mask,
            "tokens": [{"id": token_id, "text": tokenizer.decode([token_id]) if m else "[PAD]"}
                       for token_id, m in zip(ids, mask)]}
