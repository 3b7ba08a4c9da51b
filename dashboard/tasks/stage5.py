"""Stage 5's task: measure one finished run with the learner's evaluation functions; the page saves and draws it."""
from __future__ import annotations

import gc
from pathlib import Path

from dashboard.logic import worker
from dashboard.logic.kernel import LessonRef
from dashboard.tasks import plain
from dashboard.tasks.shared import finetuned_model


def side_text(comparison: dict, side: str) -> str:
    """The new text of ``side`` ("base" or "finetuned") in a ``compare_models`` result (``side`` or ``side_text``)."""
    value = comparison.get(side)
    return value if isinstance(value, str) else str(comparison.get(f"{side}_text", ""))


def evaluate(ref: LessonRef, earlier: dict[str, LessonRef], run: dict, *, eval_recipes: int,
             side_by_side: dict) -> dict:
    """Task: perplexity before and after, the side by side, the measures beyond — what the store should keep.

    Args:
        earlier: the refs of stages 1, 2 and 3 (``{"stage1": ..., ...}``), whose code prepares the held-out recipes.
        run: ``{"id", "config", "spec"}``: the run and its model spec (``dashboard.ui.model_spec``).

    Returns:
        ``{"result", "evaluations": [{"name", "value", "details"}], "generations": [{"prompt", "text"}]}``.
    """
    from transformers import AutoModelForCausalLM

    from lessons.engine.assets import resolve_model_source

    module = worker.lesson(ref)
    stage1, stage2, stage3 = (worker.lesson(earlier[key]) for key in ("stage1", "stage2", "stage3"))
    config = run.get("config") or {}
    _, tokenizer = finetuned_model(run["spec"])  # the run's tokenizer ([END] added by stage 3)
    raw = stage2.load_recipes(config.get("source") or "wikibooks")
    splits = stage2.prepare_splits(raw, config.get("n_recipes"), config.get("test_size", 0.1), config.get("seed", 42))
    held_out = splits["validation"].select(range(min(eval_recipes, len(splits["validation"]))))
    max_length = int(config.get("max_length", 256))
    tokenized = held_out.map(lambda batch: stage3.tokenize_function(batch, tokenizer, max_length), batched=True,
                             remove_columns=held_out.column_names)

    base = AutoModelForCausalLM.from_pretrained(resolve_model_source(config.get("model") or None)).eval()
    base.resize_token_embeddings(len(tokenizer))  # the same ids as the fine-tuned model reads
    finetuned = module.load_finetuned(base, Path(run["spec"]["adapter"]))
    try:
        before = float(module.perplexity(base, tokenized))
        after = float(module.perplexity(finetuned, tokenized))
        evaluations = [{"name": "perplexity_before", "value": before, "details": {"recipes": len(held_out)}},
                       {"name": "perplexity_after", "value": after, "details": {"recipes": len(held_out)}}]
        comparisons = []
        for prompt in stage1.BEFORE_PROMPTS:
            result = plain(module.compare_models(prompt, base, finetuned, tokenizer, **side_by_side))
            comparisons.append({**result, "prompt": prompt})
        texts = {side: [prompt + side_text(c, side) for prompt, c in zip(stage1.BEFORE_PROMPTS, comparisons)]
                 for side in ("base", "finetuned")}
        measures = {}
        for side, model in (("base", base), ("finetuned", finetuned)):
            measures[side] = {
                "format adherence": sum(module.format_adherence(t) for t in texts[side]) / len(texts[side]),
                "stop rate": module.stop_rate([side_text(c, side) for c in comparisons]),
                "memorised titles": len(module.memorised_titles(texts[side], list(splits["train"]["title"]))),
                "off-topic answer looks like a recipe": float(module.off_topic_probe(model, tokenizer)["recipe_like"]),
            }
            measures[side] = {name: float(value) for name, value in measures[side].items()}
            evaluations += [{"name": f"{side}: {name}", "value": value, "details": None}
                            for name, value in measures[side].items()]
        result = {"run": run["id"], "perplexity_before": before, "perplexity_after": after,
                  "comparisons": comparisons, "measures": measures}
        generations = [{"prompt": c["prompt"], "text": side_text(c, "finetuned")} for c in comparisons]
        return {"result": result, "evaluations": evaluations, "generations": generations}
    finally:
        del base, finetuned
        gc.collect()
