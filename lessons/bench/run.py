"""``run_bench``: both arms trained, measured alike, the fast and slow ways compared, the ladder, the table."""
from __future__ import annotations

import gc
import json
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from ..engine.flops import peak_flops
from ..engine.measure import generate, heldout_perplexity
from .arms import run_baseline, run_lab
from .ladder import speed_ladder
from .measurement import describe_device, measure_arm, recipe_lengths_after_prompt
from .settings import BenchSettings, say
from .table import COLUMNS, arithmetic_line, format_table, generation_row, rate


def run_bench(settings: BenchSettings, *, load_model: Callable[[], tuple[Any, Any]], train_texts: list[str],
              heldout_texts: list[str], prompts: list[str], modules: dict, store=None,
              work_dir: str | Path | None = None) -> dict:
    """Train both arms, measure them the same way, print the reports and the table; return every number.

    Args:
        load_model: returns a fresh ``(model, tokenizer)`` pair each call (each arm starts from the base).
        train_texts, heldout_texts: formatted recipes; the same for both arms.
        prompts: the stop-rate prompts (``PROMPT_TEMPLATE`` with held-out titles).
        modules: stage key → module for ``run_training`` (reference solutions).
        store: where ``put_result("stage4b", "bench", ...)`` goes; None = not saved.
    """
    import torch

    temporary = tempfile.TemporaryDirectory(prefix="lab-bench-") if work_dir is None else None
    can_bf16 = bool(modules["stage4b"].precision_settings()["bf16"])  # the lab trains in bf16 here
    work = Path(work_dir or temporary.name)
    results: dict[str, Any] = {"settings": asdict(settings), "device": describe_device(),
                               "threads": torch.get_num_threads()}
    arms: dict[str, dict] = {}
    try:
        model, tokenizer = warm_load(load_model, results)
        arms["baseline"] = baseline_arm(model, tokenizer, train_texts, heldout_texts, prompts, settings,
                                        work / "baseline", modules, can_bf16=can_bf16)
        del model  # the next arm loads its own copy; this one's memory goes first
        gc.collect()
        lab_model, tokenizer, arms["lab"] = lab_arm(load_model, train_texts, heldout_texts, prompts, settings,
                                                    work / "lab", modules, can_bf16=can_bf16)
        lengths = recipe_lengths_after_prompt(tokenizer, train_texts)  # the configured tokenizer: [END] is one token
        fast_and_slow_ways(lab_model, tokenizer, heldout_texts, prompts, settings, results)
        del lab_model  # freed before the ladder's copies
        gc.collect()
        if settings.ladder_steps > 0:
            results["ladder"] = each_pieces_gain(load_model, modules, train_texts, settings,
                                                 lab_max_length=arms["lab"]["max_length"], can_bf16=can_bf16)
        the_table(results, arms, settings, lengths=lengths, prompts=prompts, n_train=len(train_texts))
        if store is not None:
            store.put_result("stage4b", "bench", json.loads(json.dumps(results, default=str)))
    finally:
        if temporary is not None:
            temporary.cleanup()
    return results


# -- run_bench's phases, in the order it calls them ---------------------------------------------------------
def warm_load(load_model: Callable[[], tuple[Any, Any]], results: dict):
    """A first ``load_model()``, timed: with the safetensors cache in place, the warm load the lab promises."""
    started = time.perf_counter()
    model, tokenizer = load_model()
    results["load_seconds"] = time.perf_counter() - started
    say(f"warm model load: {results['load_seconds']:.2f} s")
    return model, tokenizer


def baseline_arm(model, tokenizer, train_texts: list[str], heldout_texts: list[str], prompts: list[str],
                 settings: BenchSettings, output_dir: Path, modules: dict, *, can_bf16: bool) -> dict:
    """The original assignment's recipe trained on ``model`` (``arms.run_baseline``), then measured.

    Returns the arm's numbers; its model is dropped, so that its memory can go before the lab's arm loads.
    """
    say(f"baseline: {len(train_texts)} recipes, padded to {settings.baseline_max_length}, float32, Trainer")
    baseline = run_baseline(model, tokenizer, train_texts, settings, output_dir, modules["stage3"])
    arm = measure_arm(baseline, tokenizer, heldout_texts, prompts, settings, "baseline", bf16=can_bf16)
    del arm["model"]
    return arm


def lab_arm(load_model: Callable[[], tuple[Any, Any]], train_texts: list[str], heldout_texts: list[str],
            prompts: list[str], settings: BenchSettings, output_dir: Path, modules: dict, *, can_bf16: bool):
    """LoRA Kitchen's default path on a fresh model (``arms.run_lab``), then measured as the baseline was.

    ``run_training`` ends with one validation pass: two held-out recipes keep it short; the perplexity is
    computed for both arms the same way afterwards. Returns ``(lab_model, tokenizer, arm)``: the trained
    model and its configured tokenizer, for the fast-and-slow comparison that follows.
    """
    from datasets import Dataset, DatasetDict

    model, tokenizer = load_model()
    splits = DatasetDict({"train": Dataset.from_dict({"text": list(train_texts)}),
                          "validation": Dataset.from_dict({"text": list(heldout_texts[:2])})})
    say(f"lab: {len(train_texts)} recipes, run_training's defaults")
    lab = run_lab(model, tokenizer, splits, settings, output_dir, modules)
    lab_model = lab.pop("model")
    arm = measure_arm({**lab, "model": lab_model}, tokenizer, heldout_texts, prompts, settings, "lab",
                      bf16=can_bf16)
    del arm["model"]  # the saved result carries no model repr
    return lab_model, tokenizer, arm


def fast_and_slow_ways(lab_model, tokenizer, heldout_texts: list[str], prompts: list[str], settings: BenchSettings,
                       results: dict) -> None:
    """Evaluation and generation on the lab's model, the fast way and the slow way, timed side by side.

    Held-out perplexity packed (no padding) against padded to 768 (same number, more compute); generation
    batched with the KV cache against one prompt at a time, and one prompt without the cache. Into
    ``results["eval"]`` and ``results["generation"]``.
    """
    rows = tokenizer(list(heldout_texts[:settings.compare_size]))["input_ids"]
    packed_eval = heldout_perplexity(lab_model, rows, pad_id=tokenizer.pad_token_id, packed=True)
    padded_eval = heldout_perplexity(lab_model, rows, pad_id=tokenizer.pad_token_id, packed=False,
                                     pad_to=max(768, max(len(row) for row in rows)))
    results["eval"] = {"packed": packed_eval, "padded": padded_eval}
    say(f"held-out perplexity evaluation of {len(rows)} recipes: packed {packed_eval['seconds']:.1f} s "
        f"({packed_eval['computed_tokens']} tokens computed) vs padded to "
        f"{padded_eval['computed_tokens'] // max(1, len(rows))} {padded_eval['seconds']:.1f} s "
        f"({padded_eval['computed_tokens']} computed); same perplexity "
        f"{packed_eval['perplexity']:.3f} vs {padded_eval['perplexity']:.3f}")
    compare = min(settings.compare_tokens, settings.max_new_tokens)
    few = prompts[:settings.compare_size]
    batched = generate(lab_model, tokenizer, prompts, max_new_tokens=compare, batched=True)
    one_by_one = generate(lab_model, tokenizer, few, max_new_tokens=compare, batched=False)
    no_cache = generate(lab_model, tokenizer, prompts[:1], max_new_tokens=compare, batched=False,
                        use_cache=False)
    results["generation"] = {"batched_kv": generation_row(batched), "one_by_one_kv": generation_row(one_by_one),
                             "one_no_cache": generation_row(no_cache), "max_new_tokens": compare}
    say(f"generation, ≤ {compare} new tokens: {len(prompts)} prompts batched with KV cache "
        f"{rate(batched)} tok/s, {len(few)} one by one with KV cache {rate(one_by_one)} tok/s, "
        f"one prompt without KV cache {rate(no_cache)} tok/s")


def each_pieces_gain(load_model: Callable[[], tuple[Any, Any]], modules: dict, train_texts: list[str],
                     settings: BenchSettings, *, lab_max_length: int, can_bf16: bool) -> list[dict]:
    """The speed ladder (``ladder.speed_ladder``) on a fresh, configured model; its rungs printed and returned."""
    model, tokenizer = load_model()
    modules["stage3"].configure_tokenizer(tokenizer, model)
    ladder = speed_ladder(model, tokenizer, list(train_texts), settings, lab_max_length=lab_max_length,
                          can_bf16=can_bf16)
    del model
    gc.collect()
    say("speed ladder (useful tokens/s of training steps, one piece at a time):")
    first = ladder[0]["tokens_per_s"] if ladder else None
    for rung in ladder:
        gain = f"{rung['tokens_per_s'] / first:.2f}x" if first and rung["tokens_per_s"] else "-"
        say(f"  {rung['rung']:<56} {rung['tokens_per_s'] or 0:8.0f} tok/s  "
            f"{rung['seconds_per_step']:6.2f} s/step  {gain} of rung 1")
    return ladder


def the_table(results: dict, arms: dict[str, dict], settings: BenchSettings, *, lengths: list[int],
              prompts: list[str], n_train: int) -> None:
    """Both arms into ``results`` (numbers, generations apart), the report's lines, then the table, printed last.

    ``lengths`` are the training recipes' tokens after their prompt: the share that ends within each budget
    is what a model writing recipes exactly as long as the real ones would score.
    """
    results["arms"] = {name: {key: value for key, value in arm.items() if key not in ("generations",)}
                       for name, arm in arms.items()}
    results["generations"] = {name: arm["generations"] for name, arm in arms.items()}
    results["table"] = format_table(arms)
    results["ratios"] = {key: (arms["lab"].get(key) / arms["baseline"][key]
                               if arms["baseline"].get(key) and arms["lab"].get(key) is not None else None)
                         for key, _, _ in COLUMNS}
    budgets = (settings.short_budget, settings.max_new_tokens)
    results["recipes_within"] = {str(budget): sum(length <= budget for length in lengths) / max(1, len(lengths))
                                 for budget in budgets}
    say(f"stop at [END] / at end-of-sequence: baseline {arms['baseline']['stop_rate']:.0%} / "
        f"{arms['baseline']['eos_rate']:.0%}, lab {arms['lab']['stop_rate']:.0%} / "
        f"{arms['lab']['eos_rate']:.0%}; complete recipes (DIRECTIONS, then [END]): baseline "
        f"{arms['baseline']['complete_rate']:.0%}, lab {arms['lab']['complete_rate']:.0%} "
        f"({len(prompts)} prompts × {settings.samples_per_prompt} samples, temperature "
        f"{settings.temperature:g}, top-p {settings.top_p:g}, ≤ {settings.max_new_tokens} tokens, "
        f"{arms['lab']['generation_precision']}); greedy (≤ {settings.short_budget} tokens): "
        f"baseline {arms['baseline']['greedy_stop_rate']:.0%}, lab {arms['lab']['greedy_stop_rate']:.0%}")
    say(f"stop at [END] within {settings.short_budget} new tokens: baseline "
        f"{arms['baseline']['stop_rate_short']:.0%}, lab {arms['lab']['stop_rate_short']:.0%}; the training "
        f"recipes themselves end within " + ", ".join(
            f"{budget} tokens after their title: {results['recipes_within'][str(budget)]:.0%}"
            for budget in budgets))
    say(f"padding share of the training batches: baseline {arms['baseline']['padding_share']:.1%}, "
        f"lab {arms['lab']['padding_share'] or 0:.1%}; recipes cut before their [END]: baseline "
        f"{arms['baseline']['cut_before_end']}, lab {arms['lab']['cut_before_end']} of {n_train}")
    say(f"device: {results['device']}, {results['threads']} threads; precision baseline "
        f"{arms['baseline']['precision']}, lab {arms['lab']['precision']}; learning rate baseline "
        f"{arms['baseline']['learning_rate']:g}, lab {arms['lab']['learning_rate']:g}; memory added by "
        f"training: baseline {arms['baseline']['added_mb']:.0f} MB, lab {arms['lab']['added_mb']:.0f} MB")
    results["peak_flops"] = peak_flops()
    say(arithmetic_line(arms, results["peak_flops"], results["device"]))
    say()
    say(results["table"])
