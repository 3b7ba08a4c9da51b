"""Stage 1's tasks: the learner's model (loaded once per file version, kept in the worker), tokens, generations."""
from __future__ import annotations

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain


def learner_model(ref: LessonRef, name: str | None = None):
    """``load_model_and_tokenizer(name)`` of the learner's file, kept in the worker. Never change the result."""
    return worker.remember(("learner model", ref.path, ref.fingerprint, name),
                           lambda: worker.lesson(ref).load_model_and_tokenizer(name), group="model")


def load_model(ref: LessonRef, name: str | None = None) -> dict:
    """Task: load the model with the learner's function; its name and the lesson's "before" prompts."""
    model, _ = learner_model(ref, name)
    return {"model": getattr(model, "name_or_path", "") or "base",
            "before_prompts": [str(prompt) for prompt in getattr(worker.lesson(ref), "BEFORE_PROMPTS", [])]}


def count_parameters(ref: LessonRef) -> dict:
    model, _ = learner_model(ref)
    return plain(worker.lesson(ref).count_parameters(model))


def pick_device(ref: LessonRef) -> str:
    return str(worker.lesson(ref).pick_device())


def show_tokens(ref: LessonRef, text: str) -> list[dict]:
    _, tokenizer = learner_model(ref)
    return plain(worker.lesson(ref).show_tokens(tokenizer, text))


def generate_text(ref: LessonRef, prompt: str, settings: dict) -> str:
    model, tokenizer = learner_model(ref)
    return worker.lesson(ref).generate_text(model, tokenizer, prompt, **settings)
