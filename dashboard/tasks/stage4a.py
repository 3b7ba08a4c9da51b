"""Stage 4A's task: one batch through the real model with the learner's functions (a fresh copy: a step changes it)."""
from __future__ import annotations

import gc
import math
import time

from dashboard.logic import stage_data, worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from dashboard.tasks.shared import base_tokenizer, formatted_recipes


def one_step(ref: LessonRef, stage2: LessonRef, *, batch_size: int, max_length: int, learning_rate: float) -> dict:
    """Task: everything the page draws, computed with the learner's functions (plain data)."""
    import torch
    from transformers import AutoModelForCausalLM

    from lessons.engine.assets import resolve_model_source

    module = worker.lesson(ref)
    tokenizer = base_tokenizer()
    texts = [row["text"] for row in formatted_recipes(stage2)[0][:batch_size]]
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding="longest")
    rows = [{"input_ids": ids, "attention_mask": mask}
            for ids, mask in zip(encoded["input_ids"], encoded["attention_mask"])]
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
        step = module.one_step_report(model, batch, optimizer)
    finally:
        del model
        gc.collect()
    return {"shapes": shapes, "loss": float(loss.item()), "perplexity": math.exp(float(loss.item())),
            "loss_by_hand": float(by_hand["loss"]), "counted": int(by_hand["counted"]),
            "surprise": stage_data.surprise_rows(tokens, surprise), "gradients": plain(gradients),
            "step": {key: float(value) for key, value in step.items()}, "forward_s": forward_s,
            "texts": texts}
