"""What the tasks of several pages share, made in the worker and kept there: the engine's models, the recipes.

The base model and a finished run's fine-tuned model are loaded by the engine
(never by learner code) and kept in the worker's model group; ``spec`` names
one: ``None`` for the base model, ``{"run", "adapter", "model"}`` for a run's
adapter (``dashboard.logic.runs.model_spec`` makes it from the store).
"""
from __future__ import annotations

import json
from pathlib import Path

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef


def base_tokenizer(name: str | None = None):
    """The base model's tokenizer. Never change it: ``copy.deepcopy`` it first."""
    from transformers import AutoTokenizer

    from lessons.engine.assets import resolve_model_source

    return worker.remember(("base tokenizer", name),
                           lambda: AutoTokenizer.from_pretrained(resolve_model_source(name)))


def base_model(name: str | None = None):
    """(model, tokenizer) of the base model, in evaluation mode. Never change them."""
    def load():
        from transformers import AutoModelForCausalLM

        from lessons.engine.assets import resolve_model_source

        return AutoModelForCausalLM.from_pretrained(resolve_model_source(name)).eval(), base_tokenizer(name)

    return worker.remember(("base model", name), load, group="model")


def finetuned_model(spec: dict):
    """(model, tokenizer) of a finished run: the base model with the run's adapter. Never change them.

    The tokenizer comes from the adapter's folder when the run saved it (stage 3 added ``[END]``), and
    the base model's embeddings are resized to it before the adapter goes on.
    """
    def load():
        from lessons.engine.trained import load_trained_model

        return load_trained_model(spec["adapter"], spec.get("model") or None)

    return worker.remember(("fine-tuned model", spec["adapter"]), load, group="model")


def model_for(spec: dict | None):
    """The base model (``spec`` None) or a run's fine-tuned model."""
    return base_model() if spec is None else finetuned_model(spec)


def generate_until_end(spec: dict | None, prompt: str, *, max_new_tokens: int = 80) -> str:
    """Task: a greedy continuation by the engine (not learner code) that stops at ``[END]``; only the new text."""
    import torch

    from lessons.engine.constants import END_MARKER

    model, tokenizer = model_for(spec)
    inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    stop_ids = [tokenizer.eos_token_id] + ([tokenizer.get_vocab()[END_MARKER]] if END_MARKER in tokenizer.get_vocab()
                                           else [])
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                pad_token_id=tokenizer.pad_token_id, stop_strings=[END_MARKER], tokenizer=tokenizer)
    new_ids = [i for i in output[0, inputs["input_ids"].shape[1]:].tolist() if i != tokenizer.eos_token_id]
    text = tokenizer.decode(new_ids, skip_special_tokens=False)
    return text[: text.index(END_MARKER) + len(END_MARKER)] if END_MARKER in text else text


def formatted_recipes(stage2: LessonRef, source: str = "wikibooks") -> tuple[list[dict], str]:
    """(rows, note): every valid recipe of ``source`` formatted by stage 2's ``format_recipe`` (``{"title", "text"}``).

    When stage 2's code raises, the 48 recipes of the shipped fixture instead, and ``note`` says why.
    """
    def make() -> tuple[list[dict], str]:
        try:
            module = worker.lesson(stage2)
            raw = module.load_recipes(source)
            return [{"title": str(recipe.get("title", "")), "text": module.format_recipe(recipe)["text"]}
                    for recipe in raw if module.is_valid_recipe(recipe)], ""
        except Exception as error:  # noqa: BLE001 - the page still works on the fixture
            from lessons.engine.paths import DATA_DIR

            lines = (DATA_DIR / "fixtures" / "formatted_recipes.jsonl").read_text(encoding="utf-8").splitlines()
            note = (f"(stage 2's code failed — {type(error).__name__}: {error} — so the 48 recipes of "
                    "data/fixtures/formatted_recipes.jsonl are used here)")
            return [json.loads(line) for line in lines if line.strip()], note

    return worker.remember(("formatted recipes", stage2.path, stage2.fingerprint, source), make)
