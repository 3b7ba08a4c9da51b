"""Both arms measured the same way: held-out perplexity and the stop rate, plus what the bench reports beside them.

The measuring itself (perplexity over whole recipes, generations that stop, memory) is the engine's,
``lessons.engine.measure``, shared with the pipeline and training.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..engine.constants import PROMPT_TEMPLATE
from ..engine.measure import generate, heldout_perplexity, stop_rate_within
from ..engine.speed import FrozenInBf16
from .settings import BenchSettings, say


def recipe_lengths_after_prompt(tokenizer, texts: list[str]) -> list[int]:
    """How many tokens each formatted recipe has after its prompt (``PROMPT_TEMPLATE``), its ``[END]`` included:
    the new tokens a generation needs to write that recipe and stop."""
    marker = PROMPT_TEMPLATE.split("{title}")[1]  # "\nINGREDIENTS:": where a prompt ends
    prompts = [text[:text.index(marker) + len(marker)] if marker in text else "" for text in texts]
    whole, heads = tokenizer(list(texts))["input_ids"], tokenizer(prompts)["input_ids"]
    return [len(ids) - len(head) for ids, head in zip(whole, heads)]


def measure_arm(arm: dict, tokenizer, heldout_texts, prompts, settings: BenchSettings, name: str, *,
                bf16: bool) -> dict:
    """Held-out perplexity (whole recipes, float32) and the stop rate (sampled, and greedy; in bf16 where the
    lab trains in bf16), the same for both arms. Greedy gets ``short_budget`` tokens: it is there to show the
    loops, which 320 tokens show as well as 512."""
    model = arm.pop("model")
    rows = tokenizer(list(heldout_texts))["input_ids"]
    evaluation = heldout_perplexity(model, rows, pad_id=tokenizer.pad_token_id, packed=True)
    # Generation in bf16, the frozen weights stored in bf16 meanwhile: 24 sampled recipes at a time took 130 ms
    # a token instead of 183 in float32 (and 175 with autocast alone), measured on the 2-core CPU.
    with FrozenInBf16(model, enabled=bf16):
        sampled = generate(model, tokenizer, prompts, max_new_tokens=settings.max_new_tokens, batched=True,
                           temperature=settings.temperature, top_p=settings.top_p,
                           samples=settings.samples_per_prompt, seed=settings.seed, bf16=bf16)
        greedy = generate(model, tokenizer, prompts, max_new_tokens=settings.short_budget, batched=True, bf16=bf16)
    count = len(sampled["ids"])
    short = stop_rate_within(sampled, settings.short_budget)
    seconds = sampled["seconds"] + greedy["seconds"]
    say(f"{name}: held-out perplexity {evaluation['perplexity']:.2f}; stopped at [END] in "
        f"{sum(sampled['stopped_at_end'])} of {count} sampled generations within {settings.max_new_tokens} "
        f"new tokens, {round(short * count)} within {settings.short_budget} "
        f"({sampled['complete_rate']:.0%} complete, with DIRECTIONS before it); greedy "
        f"{sum(greedy['stopped_at_end'])} of {len(prompts)} ({seconds:.0f} s generating)")
    arm.update(perplexity=evaluation["perplexity"], eval=evaluation, stop_rate=sampled["stop_rate"],
               stop_rate_short=short,
               greedy_stop_rate=greedy["stop_rate"], complete_rate=sampled["complete_rate"],
               greedy_complete_rate=greedy["complete_rate"], generations_count=count,
               eos_rate=sum(sampled["stopped_at_eos"]) / max(1, count),
               generation_seconds=seconds,
               generation_precision="bfloat16" if bf16 else "float32",
               generations=[{"prompt": prompts[i // settings.samples_per_prompt], "text": text, "stopped": stopped,
                             "new_tokens": length}
                            for i, (text, stopped, length) in enumerate(zip(sampled["texts"],
                                                                            sampled["stopped_at_end"],
                                                                            sampled["new_tokens"]))])
    arm["model"] = model
    return arm


def describe_device() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    return f"CPU {name} ({os.cpu_count()} cores)"
