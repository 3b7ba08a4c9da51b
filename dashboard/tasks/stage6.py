"""Stage 6's tasks: the learner's sampling math on the lesson's toy logits and on a real model's next token."""
from __future__ import annotations

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from dashboard.tasks.shared import model_for


def toy(ref: LessonRef, logits: list[float], temperature: float, top_p: float) -> list[float]:
    """Task: the probabilities of ``logits`` after the learner's ``apply_temperature`` then ``top_p_filter``."""
    import torch

    module = worker.lesson(ref)
    shaped = module.apply_temperature(torch.tensor(logits), temperature)
    filtered = module.top_p_filter(shaped, top_p)
    return torch.softmax(filtered, dim=-1).tolist()


def distribution(ref: LessonRef, spec: dict | None, prompt: str, *, temperature: float, top_p: float,
                 k: int) -> list[dict]:
    """Task: ``next_token_distribution`` on the base model (``spec`` None) or a run's fine-tuned model."""
    model, tokenizer = model_for(spec)
    rows = plain(worker.lesson(ref).next_token_distribution(model, tokenizer, prompt, temperature=temperature,
                                                            top_p=top_p, k=k))
    for row in rows:  # the token's own string too: a piece of a character decodes to "�", its bytes are there
        if isinstance(row, dict) and isinstance(row.get("id"), int):
            row["token"] = tokenizer.convert_ids_to_tokens(row["id"])
    return rows


def custom_recipe(ref: LessonRef, spec: dict | None, prompt: str, settings: dict) -> str:
    model, tokenizer = model_for(spec)
    return str(worker.lesson(ref).generate_custom_recipe(model, tokenizer, prompt, **settings))


def sweep(ref: LessonRef, spec: dict | None, prompt: str, settings: dict) -> list[dict]:
    model, tokenizer = model_for(spec)
    return plain(worker.lesson(ref).sampling_sweep(model, tokenizer, prompt, **settings))
