"""Stage 4B's tasks: the learner's LoRA functions on a *meta-device* copy of the model (its shapes, no numbers)."""
from __future__ import annotations

from typing import Any

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef


def _meta_model():
    """The model's architecture on the meta device: every shape, no numbers, no memory (instant)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from lessons.engine.assets import resolve_model_source

    config = worker.remember(("model config",), lambda: AutoConfig.from_pretrained(resolve_model_source(None)))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def _counts(result: Any, model) -> tuple[int, int]:
    """(trainable, total) from whatever shape trainable_parameters returns (a dict, a pair or a number)."""
    if isinstance(result, dict):
        trainable = result.get("trainable", result.get("trainable_params"))
        total = result.get("total", result.get("all", result.get("all_params")))
        if trainable is not None and total is not None:
            return int(trainable), int(total)
    if isinstance(result, (tuple, list)) and len(result) >= 2:
        return int(result[0]), int(result[1])
    if isinstance(result, (int, float)):
        return int(result), sum(p.numel() for p in model.parameters())
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


def targets(ref: LessonRef) -> tuple[list[str], list[str]]:
    """Task: (the learner's ``attention_modules`` for this model, every linear layer name it has)."""
    def make():
        import torch

        model = _meta_model()
        linear = sorted({name.split(".")[-1] for name, layer in model.named_modules()
                         if isinstance(layer, torch.nn.Linear) and name.split(".")[-1] != "lm_head"})
        return [str(name) for name in worker.lesson(ref).attention_modules(model)], linear

    return worker.remember(("targets", ref.path, ref.fingerprint), make)


def lora_counts(ref: LessonRef, rank: int, alpha: int, target_modules: list[str], dropout: float) -> dict:
    """Task: (trainable, total) parameters with ``make_lora_config``, ``apply_lora`` and ``trainable_parameters``."""
    def make() -> dict:
        module = worker.lesson(ref)
        model = _meta_model()
        config = module.make_lora_config(r=rank, alpha=alpha, target_modules=list(target_modules), dropout=dropout)
        wrapped = module.apply_lora(model, config)
        wrapped = wrapped if wrapped is not None else model
        trainable, total = _counts(module.trainable_parameters(wrapped), wrapped)
        return {"trainable": trainable, "total": total}

    return worker.remember(("lora counts", ref.path, ref.fingerprint, rank, alpha, tuple(target_modules), dropout),
                           make)
