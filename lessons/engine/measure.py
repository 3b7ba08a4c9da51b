"""Measuring a model, the engine's one place for it: perplexity, generations that stop, tokens/s, memory.

The pipeline, the bench (``lessons.bench``) and training's own metrics measure with these; the
learner's stage 5 functions (``perplexity``, ``stop_rate``, ...) stay in the lesson, and the stage 5
page's evaluation (``lessons.engine.evaluation``) calls those.

* ``perplexity_from_loss``: exp of a mean loss, ``inf`` rather than an overflow error.
* ``heldout_perplexity`` (with ``summed_loss``, ``pack``, ``pad``): perplexity over whole held-out rows,
  padding never counted, packed or padded.
* ``generate`` and ``stop_rate_within``: generations that stop at ``[END]``, their stop rate and tokens/s.
* ``useful_tokens``, ``padding_share``: real tokens against the ones computed.
* ``reset_peak_memory``, ``current_memory_mb``, ``peak_memory_mb``: memory on a GPU or a CPU.
"""
from __future__ import annotations

import contextlib
import math
import resource
import sys
import time
from pathlib import Path

from .constants import END_MARKER, IGNORE_INDEX


def perplexity_from_loss(loss: float | None) -> float | None:
    """``exp(loss)`` of a mean next-token loss; None for None, ``inf`` where the exponential overflows."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return float("inf")


def training_device():
    """The GPU where there is one, else the CPU: where the bench trains and measures."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def reset_peak_memory() -> None:
    """Start a fresh peak: CUDA's allocator statistics, or Linux's high-water mark of this process's RSS."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # "5" resets VmHWM, the peak resident set size


def _proc_status_mb(field: str) -> float | None:
    """A line of Linux's ``/proc/self/status`` (``VmRSS``, ``VmHWM``: kB) in MB, or None elsewhere."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
        return int(line.split()[1]) / 1024
    return None


def current_memory_mb() -> float:
    """Memory in use now: GPU bytes allocated, or this process's resident set size, in MB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated() / 2**20
    resident = _proc_status_mb("VmRSS")
    return resident if resident is not None else 0.0


def peak_memory_mb() -> float:
    """Peak memory since ``reset_peak_memory``: GPU bytes allocated, or this process's peak RSS, in MB."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kB on Linux (lifetime peak)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def useful_tokens(batch: dict) -> int:
    """Real tokens in a collated batch: the attention mask's ones, or every token of a padding-free batch."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())


def padding_share(rows: list[list[int]], length: int) -> float:
    """The share of ``len(rows) × length`` slots that padding fills when rows are cut or padded to ``length``."""
    if not rows:
        return 0.0
    return sum(max(0, length - min(len(row), length)) for row in rows) / (length * len(rows))


# -- batches and perplexity -----------------------------------------------------------------------------------------
def pack(rows: list[list[int]]) -> dict:
    """Lay token rows end to end in one row, as ``DataCollatorWithFlattening`` does: ids, restarting positions,
    labels with each recipe's first token -100 (nothing predicts a recipe's first token from the previous one),
    and ``use_cache=False`` (with a cache, transformers would not keep the recipes apart: ``PackingCollator``)."""
    from .speed import packing_collator

    return packing_collator()([{"input_ids": list(row)} for row in rows])


def pad(rows: list[list[int]], pad_id: int, length: int | None = None) -> dict:
    """Rows padded on the right to ``length`` (default: the longest), labels -100 on padding."""
    import torch

    length = length or max(len(row) for row in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        row = list(row)[:length]
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def to_device(value, device):
    """A tensor moved to ``device``; anything else (``use_cache=False``) as it is."""
    return value.to(device) if hasattr(value, "to") else value


def summed_loss(model, batch: dict) -> tuple[float, int]:
    """Summed next-token loss over the batch's labelled tokens, and how many there were."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    inputs = {key: to_device(value, device) for key, value in batch.items() if key != "labels"}
    labels = batch["labels"].to(device)
    logits = model(**inputs).logits.float()
    shifted_logits, shifted_labels = logits[:, :-1], labels[:, 1:]
    count = int((shifted_labels != IGNORE_INDEX).sum())
    loss = F.cross_entropy(shifted_logits.reshape(-1, shifted_logits.shape[-1]), shifted_labels.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="sum")
    return float(loss), count


def heldout_perplexity(model, rows: list[list[int]], *, pad_id: int, packed: bool, batch_size: int = 4,
                       pad_to: int | None = None) -> dict:
    """Perplexity over whole held-out rows: exp(total loss / total real tokens), padding never counted.

    ``packed=True`` lays each batch end to end (no padding); ``packed=False`` pads every row to ``pad_to`` (the
    usual fixed-length evaluation, compute spent on padding). Both give the same number; the time differs.
    """
    import torch

    was_training = model.training
    model.eval()
    total_loss, total_tokens, computed = 0.0, 0, 0
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = pack(chunk) if packed else pad(chunk, pad_id, pad_to)
            loss, count = summed_loss(model, batch)
            total_loss, total_tokens = total_loss + loss, total_tokens + count
            computed += batch["input_ids"].numel()
    model.train(was_training)
    return {"perplexity": perplexity_from_loss(total_loss / max(1, total_tokens)),
            "seconds": time.perf_counter() - started, "tokens": total_tokens, "computed_tokens": computed}


# -- generation -------------------------------------------------------------------------------------------
def generate(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batched: bool = True,
             use_cache: bool = True, temperature: float = 0.0, top_p: float = 1.0, samples: int = 1,
             seed: int = 0, bf16: bool = False) -> dict:
    """Generation stopping at ``[END]`` or the end-of-sequence token; greedy (``temperature=0``) or sampled
    (``samples`` per prompt, seeded); batched with left padding or one prompt at a time; under bf16 autocast
    with ``bf16=True`` (the caller keeps the frozen weights in bf16 with ``FrozenInBf16``: autocast alone
    converts every float32 weight again at every token).

    Returns the new ids per generation (prompt by prompt, ``samples`` each, up to and including the first stop
    token), whether each wrote ``[END]``, and whether it wrote ``DIRECTIONS:`` before it (a *complete*
    recipe), the time and token counts."""
    import torch
    from transformers import set_seed

    end_id = tokenizer.get_vocab().get(END_MARKER)
    stop_ids = [i for i in (end_id, tokenizer.eos_token_id) if i is not None]
    device = next(model.parameters()).device
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"  # new tokens follow each prompt directly
    decoding = ({"do_sample": True, "temperature": temperature, "top_p": top_p, "num_return_sequences": samples}
                if temperature > 0 else {"do_sample": False})
    outputs: list[list[int]] = []
    set_seed(seed)
    started = time.perf_counter()
    try:
        groups = [prompts] if batched else [[prompt] for prompt in prompts]
        for group in groups:
            inputs = tokenizer(group, return_tensors="pt", padding=True).to(device)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                generated = model.generate(**inputs, max_new_tokens=max_new_tokens, eos_token_id=stop_ids,
                                           pad_token_id=tokenizer.pad_token_id, use_cache=use_cache, **decoding)
            for row in generated[:, inputs["input_ids"].shape[1]:].tolist():
                kept = []
                for token in row:          # up to and including the first stop token; the rest is padding
                    kept.append(token)
                    if token in stop_ids:
                        break
                outputs.append(kept)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    seconds = time.perf_counter() - started
    tokens = sum(len(row) for row in outputs)
    stopped_end = [end_id is not None and end_id in row for row in outputs]
    texts = [tokenizer.decode(row, skip_special_tokens=False) for row in outputs]
    complete = [stopped and "DIRECTIONS:" in text for stopped, text in zip(stopped_end, texts)]
    stopped_eos = [tokenizer.eos_token_id in row for row in outputs]
    return {"ids": outputs, "stopped_at_end": stopped_end, "stopped_at_eos": stopped_eos,
            "new_tokens": [len(row) for row in outputs],
            "stop_rate": sum(stopped_end) / max(1, len(outputs)), "seconds": seconds, "tokens": tokens,
            "tokens_per_s": tokens / seconds if seconds > 0 else None,
            "complete_rate": sum(complete) / max(1, len(outputs)), "texts": texts}


def stop_rate_within(result: dict, budget: int) -> float:
    """The share of ``generate``'s generations whose ``[END]`` is among their first ``budget`` new tokens.

    Sampling one token does not depend on how many may follow, so with the same seed a run with a bigger
    budget writes the same first ``budget`` tokens: this is the stop rate a run with that budget would give."""
    within = [stopped and length <= budget for stopped, length in zip(result["stopped_at_end"], result["new_tokens"])]
    return sum(within) / max(1, len(within))
