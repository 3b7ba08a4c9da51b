"""Stage 4A's task: one batch through the real model with the learner's functions (a fresh copy: a step changes it).

The step is measured on the batch it learns from and on a second batch of other recipes it never
sees (``one_step_report``'s ``other_batch``): the page shows how little one step helps beyond its batch.
"""
from __future__ import annotations

import gc
import math
import time

from dashboard.logic import stage_data, worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from dashboard.tasks.shared import base_tokenizer, formatted_recipes


def tokenized_rows(tokenizer, texts: list[str], max_length: int) -> list[dict]:
    """``texts`` as rows of ``input_ids`` and ``attention_mask``, padded to the longest (stage 3's output)."""
    if not texts:
        return []
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding="longest")
    return [{"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]


def number_or_none(value) -> float | None:
    """A report's number as a float; None (not measured) stays None, so the page can say so."""
    return None if value is None else float(value)


def one_step(ref: LessonRef, stage2: LessonRef, *, batch_size: int, max_length: int, learning_rate: float) -> dict:
    """Task: everything the page draws, computed with the learner's functions (plain data)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lessons.engine.assets import resolve_model_source

    module = worker.lesson(ref)
    tokenizer = base_tokenizer()
    recipes = [row["text"] for row in formatted_recipes(stage2)[0]]
    texts, other_texts = recipes[:batch_size], recipes[batch_size:2 * batch_size]
    rows, other_rows = tokenized_rows(tokenizer, texts, max_length), tokenized_rows(tokenizer, other_texts, max_length)
    model = AutoModelForCausalLM.from_pretrained(resolve_model_source(None))  # a fresh copy: one step changes it
    try:
        collator = module.make_collator(tokenizer)
        batch = module.first_batch(rows, collator, batch_size=batch_size)
        shapes = {name: list(tensor.shape) for name, tensor in batch.items()}
        started = time.perf_counter()
        loss = module.forward_loss(model, batch)
        forward_s = time.perf_counter() - started
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        by_hand = module.loss_by_hand(logits, batch["labels"])
        first = batch["input_ids"][0, 1:].tolist()
        real = int(batch["attention_mask"][0].sum()) - 1
        surprise = by_hand["surprise"][0].tolist()[:real]
        tokens = [tokenizer.decode([token_id]) for token_id in first[:real]]
        gradients = module.backward_and_inspect(model, loss)
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
        other = module.first_batch(other_rows, collator, batch_size=batch_size) if other_rows else None
        step = module.one_step_report(model, batch, optimizer, other_batch=other)
    finally:
        del model
        gc.collect()
    return {"shapes": shapes, "loss": float(loss.item()), "perplexity": math.exp(float(loss.item())),
            "loss_by_hand": float(by_hand["loss"]), "counted": int(by_hand["counted"]),
            "surprise": stage_data.surprise_rows(tokens, surprise), "gradients": plain(gradients),
            "step": {key: number_or_none(value) for key, value in step.items()}, "forward_s": forward_s,
            "texts": texts}
