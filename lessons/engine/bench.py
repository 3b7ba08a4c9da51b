"""``python -m lessons bench``: the original assignment's training recipe against LoRA Kitchen's, side by side.

One invocation, one machine, identical data (the same training recipes, the
same held-out recipes, the same number of each):

* **baseline**: the original assignment as written: every recipe padded (and
  cut) to 256 tokens, batches of 4, float32, LoRA r=8 on q/v, lr 2e-4, ``[END]``
  added as a new special token with stage 3's resize and nothing more,
  transformers' ``Trainer``;
* **lab**: LoRA Kitchen's default training path, ``run_training`` with its
  default ``TrainSettings`` (whole recipes up to 768 tokens, batches grouped by
  length and padded only to their longest, bf16 autocast where the hardware
  has it with the frozen weights kept in bf16, no LoRA dropout, SDPA attention
  without a mask for right-padded batches (its causal path), the output layer
  and the loss a slice at a time (``ChunkedLoss``), fused AdamW on a GPU, lr
  5e-3, ``[END]`` started from the end-of-sequence row and trained).

Both are then measured the same way: held-out perplexity over whole recipes (no
truncation, padding never counted), and the stop rate: generations from a fixed
set of held-out recipe titles, sampled as the lab's side-by-side comparison
samples (temperature 0.7, top-p 0.95, seeded; eight per prompt, two with
``--quick``), up to 512 new tokens (room for 99 % of the real recipes; the share
that stopped within ``short_budget``, 320, comes from the same generations),
batched with the KV cache; a generation *stops* when it writes ``[END]``, and is
*complete* when it also wrote ``DIRECTIONS:`` before it. Beside it, the share of
the training recipes themselves that end within each budget: what a model
writing recipes exactly as long as the real ones would score. Greedy decoding is
reported too, up to 320 tokens (a small model decoded greedily loops).
Generation runs under bf16 autocast where the lab trains in bf16.

Around that it reports what else the lab made fast: the warm model load (the
safetensors cache), perplexity evaluation with and without padding waste,
generation batched with the KV cache vs one prompt at a time, and a ladder of
training-step timings that adds one piece at a time (``ladder_rungs``), and
the model arithmetic per second of both arms with, on a GPU whose peak it
knows, the share of that peak (``flops.py``). The results go to the store
(``stage4b``/``bench``) for the dashboard's chart; the table's last line is
the ratio lab / baseline.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from .constants import END_MARKER, PROMPT_TEMPLATE
from .flops import PEAK_ENV, peak_flops, training_flops
from .quiet import quiet_library_notices

IGNORE_INDEX = -100  # the label cross-entropy skips


@dataclass
class BenchSettings:
    """What the benchmark trains and measures; ``--quick`` and the command line set these."""

    n_train: int = field(default=320, metadata={
        "help": "training recipes, the same for both arms (320 = 80 steps of 4); -1 = every training recipe"})
    epochs: int = field(default=1, metadata={
        "help": "whole passes over the training recipes, both arms (the GPU target: --n_train -1 --epochs 3)"})
    n_heldout: int = field(default=16, metadata={"help": "held-out recipes for perplexity, kept whole"})
    n_prompts: int = field(default=12, metadata={"help": "recipe-title prompts for the stop rate (held-out titles)"})
    samples_per_prompt: int = field(default=8, metadata={
        "help": "sampled generations per prompt for the stop rate (8 × 12 prompts = 96 in all)"})
    max_new_tokens: int = field(default=512, metadata={
        "help": "new tokens at most per stop-rate generation (512 leaves room for almost every real recipe)"})
    short_budget: int = field(default=320, metadata={
        "help": "also report the share that stopped within this many new tokens, read off the same generations"})
    temperature: float = field(default=0.7, metadata={
        "help": "sampling temperature of the stop-rate generations (stage 5's compare_models default)"})
    top_p: float = field(default=0.95, metadata={
        "help": "nucleus (top-p) of the stop-rate sampling, as compare_models"})
    batch_size: int = field(default=4, metadata={"help": "recipes per training step, both arms"})
    learning_rate: float = field(default=2e-4, metadata={
        "help": "the baseline's learning rate (the assignment's); the lab uses TrainSettings' default"})
    rank: int = field(default=8, metadata={"help": "LoRA rank on q_proj/v_proj, both arms"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha, both arms"})
    lab_learning_rate: float | None = field(default=None, metadata={
        "help": "override the lab's learning rate (default: TrainSettings' default, run_training's own)"})
    baseline_max_length: int = field(default=256, metadata={
        "help": "the original assignment's padded (and truncated) length"})
    ladder_steps: int = field(default=3, metadata={
        "help": "timed training steps per rung of the speed ladder (after one warm-up step); 0 = no ladder"})
    compare_tokens: int = field(default=48, metadata={
        "help": "new tokens per prompt when timing batched vs one-by-one generation"})
    compare_size: int = field(default=4, metadata={
        "help": "held-out recipes and prompts for timing the slow and fast ways to evaluate and generate"})
    seed: int = field(default=42, metadata={"help": "data split, LoRA initialisation, order"})
    source: str = field(default="wikibooks", metadata={"help": "recipes, as stage 2's load_recipes takes them"})
    save: bool = field(default=True, metadata={"help": "save the results in the store for the dashboard"})


# 32 steps per arm, 24 stop-rate samples (a rough stop rate), two timed steps per ladder rung: about 13 min on
# the 2-core CPU, under the 15 allowed
QUICK = {"n_train": 128, "n_heldout": 12, "samples_per_prompt": 2, "ladder_steps": 2}


def _print(message: str = "") -> None:
    print(message, flush=True)


# -- measuring ------------------------------------------------------------------------------------------
def _device():
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


# -- batches -----------------------------------------------------------------------------------------
def pack(rows: list[list[int]]) -> dict:
    """Lay token rows end to end in one row, as ``DataCollatorWithFlattening`` does: ids, restarting positions,
    labels with each recipe's first token -100 (nothing predicts a recipe's first token from the previous one),
    and ``use_cache=False`` (with a cache, transformers would not keep the recipes apart: ``PackingCollator``)."""
    from .training import packing_collator

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


def _to(value, device):
    return value.to(device) if hasattr(value, "to") else value


def summed_loss(model, batch: dict) -> tuple[float, int]:
    """Summed next-token loss over the batch's labelled tokens, and how many there were."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    inputs = {key: _to(value, device) for key, value in batch.items() if key != "labels"}
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
    return {"perplexity": math.exp(total_loss / max(1, total_tokens)), "seconds": time.perf_counter() - started,
            "tokens": total_tokens, "computed_tokens": computed}


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


def recipe_lengths_after_prompt(tokenizer, texts: list[str]) -> list[int]:
    """How many tokens each formatted recipe has after its prompt (``PROMPT_TEMPLATE``), its ``[END]`` included:
    the new tokens a generation needs to write that recipe and stop."""
    marker = PROMPT_TEMPLATE.split("{title}")[1]  # "\nINGREDIENTS:": where a prompt ends
    prompts = [text[:text.index(marker) + len(marker)] if marker in text else "" for text in texts]
    whole, heads = tokenizer(list(texts))["input_ids"], tokenizer(prompts)["input_ids"]
    return [len(ids) - len(head) for ids, head in zip(whole, heads)]


# -- the two arms -------------------------------------------------------------------------------------------
def _step_timer():
    """A Trainer callback adding up the time spent inside training steps (not evaluation or saving)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        seconds = 0.0
        steps = 0

        def on_step_begin(self, args, state, control, **kwargs):
            self._started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds += time.perf_counter() - self._started
            self.steps += 1

    return StepTimer()


def run_baseline(model, tokenizer, train_texts: list[str], settings: BenchSettings, output_dir: Path,
                 stage3) -> dict:
    """The original assignment's recipe: pad/cut to 256, float32, Trainer, LoRA r=8 on q/v, [END] just added."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    started = time.perf_counter()
    set_seed(settings.seed)
    stage3.configure_tokenizer(tokenizer, model)
    encoded = tokenizer(train_texts, truncation=True, padding="max_length", max_length=settings.baseline_max_length)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=["q_proj", "v_proj"],
                        lora_dropout=0.05, bias="none", task_type=TaskType.CAUSAL_LM)
    lora_model = get_peft_model(model, config)
    on_cuda = torch.cuda.is_available()
    args = TrainingArguments(output_dir=str(output_dir), per_device_train_batch_size=settings.batch_size,
                             learning_rate=settings.learning_rate, num_train_epochs=settings.epochs,
                             logging_steps=10,
                             eval_strategy="no", save_strategy="no", report_to="none", seed=settings.seed,
                             bf16=False, fp16=False, use_cpu=not on_cuda, disable_tqdm=True)
    timer = _step_timer()
    trainer = Trainer(model=lora_model, args=args, train_dataset=dataset, callbacks=[timer],
                      data_collator=DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False))
    reset_peak_memory()
    before = current_memory_mb()
    trainer.train()
    peak = peak_memory_mb()
    whole = tokenizer(train_texts)["input_ids"]  # uncut: what padding and the cut cost
    cut = [min(len(ids), settings.baseline_max_length) for ids in whole]  # the real tokens of each padded row
    tokens = sum(cut) * settings.epochs
    slots = len(cut) * settings.baseline_max_length * settings.epochs
    flops = training_flops(lora_model, cut) * settings.epochs
    return {"model": lora_model, "useful_tokens": tokens, "computed_tokens": slots, "step_seconds": timer.seconds,
            "model_flops": flops, "flops_per_s": flops / timer.seconds if timer.seconds else None,
            "steps": timer.steps, "wall_seconds": time.perf_counter() - started, "peak_mb": peak,
            "added_mb": peak - before, "tokens_per_s": tokens / timer.seconds if timer.seconds else None,
            "padding_share": padding_share(whole, settings.baseline_max_length), "precision": "float32",
            "max_length": settings.baseline_max_length, "learning_rate": settings.learning_rate,
            "cut_before_end": sum(len(ids) > settings.baseline_max_length for ids in whole)}


def run_lab(model, tokenizer, splits, settings: BenchSettings, output_dir: Path, modules: dict) -> dict:
    """LoRA Kitchen's default path: ``run_training`` with the default ``TrainSettings`` (sizes from the bench)."""
    from .store import Store
    from .training import TrainSettings, run_training

    overrides = {"learning_rate": settings.lab_learning_rate} if settings.lab_learning_rate else {}
    train_settings = TrainSettings(batch_size=settings.batch_size, rank=settings.rank, alpha=settings.alpha,
                                   epochs=settings.epochs, eval_every=10**6, seed=settings.seed,  # one evaluation
                                   **overrides)
    started = time.perf_counter()
    with Store(output_dir / "bench.sqlite", learner="bench") as store:
        reset_peak_memory()
        before = current_memory_mb()
        summary = run_training(train_settings, store=store, run_id="bench-lab", modules=modules,
                               output_dir=output_dir, model=model, tokenizer=tokenizer, splits=splits)
        peak = peak_memory_mb()
    wall = time.perf_counter() - started
    tokens = int(summary.get("tokens_seen") or 0)
    step_seconds = tokens / summary["tokens_per_s"] if summary.get("tokens_per_s") else None
    share = summary.get("padding_share") or 0.0
    whole = tokenizer(list(splits["train"]["text"]))["input_ids"]
    flops = training_flops(summary["model"], [min(len(ids), train_settings.max_length) for ids in whole]) \
        * settings.epochs
    return {"model": summary["model"], "useful_tokens": tokens, "computed_tokens": round(tokens / (1 - share)),
            "step_seconds": step_seconds, "model_flops": flops,
            "flops_per_s": flops / step_seconds if step_seconds else None, "steps": summary.get("steps"),
            "wall_seconds": wall, "peak_mb": peak,
            "added_mb": peak - before, "tokens_per_s": summary.get("tokens_per_s"),
            "padding_share": summary.get("padding_share"), "attention": summary.get("attention"),
            "group_by_length": summary.get("group_by_length"), "frozen_in_bf16": summary.get("frozen_in_bf16"),
            "chunked_loss": summary.get("chunked_loss"),
            "precision": "bfloat16" if summary.get("bf16") else "float32", "max_length": train_settings.max_length,
            "learning_rate": train_settings.learning_rate,
            "packed": summary.get("packed"), "end_init": summary.get("end_init"),
            "cut_before_end": sum(len(ids) > train_settings.max_length for ids in whole)}


# -- the speed ladder: each piece's gain ---------------------------------------------------------------------
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Rung:
    """One training configuration of the speed ladder."""

    label: str
    batching: str = "random"        # "random" (padded to the cut), "grouped" (sorted, padded to the longest), "packed"
    bf16: bool = False
    dropout: float = 0.05
    frozen_bf16: bool = False
    whole: bool = False             # cut at lab_max_length instead of the baseline's 256
    no_mask: bool = False           # right-padded batches without their attention mask (SDPA's causal path)
    end_row: bool = False           # [END]'s embedding row trained (trainable_token_indices)
    attention: str = "sdpa"
    all_linear: bool = False        # LoRA on every linear layer instead of q/v
    chunked_loss: bool = False      # output layer and loss a slice at a time (ChunkedLoss)


def ladder_rungs() -> list[Rung]:
    """The baseline, then one piece added per rung up to the lab's default, then three alternatives measured."""
    lab = dict(batching="grouped", bf16=True, dropout=0.0, frozen_bf16=True, whole=True, no_mask=True, end_row=True,
               chunked_loss=True)
    return [
        Rung("float32, padded to 256, random batches (baseline)"),
        Rung("+ batches grouped by length, padded to their longest", batching="grouped"),
        Rung("+ bf16 autocast", batching="grouped", bf16=True),
        Rung("+ no LoRA dropout", batching="grouped", bf16=True, dropout=0.0),
        Rung("+ frozen weights kept in bf16", batching="grouped", bf16=True, dropout=0.0, frozen_bf16=True),
        Rung("+ whole recipes (not cut at 256)", **{**lab, "no_mask": False, "end_row": False, "chunked_loss": False}),
        Rung("+ no attention mask for right padding", **{**lab, "end_row": False, "chunked_loss": False}),
        Rung("+ [END] row trained", **{**lab, "chunked_loss": False}),
        Rung("+ loss in slices of 128 tokens: the lab's default", **lab),
        Rung("  instead: packed into one row", **{**lab, "batching": "packed"}),
        Rung("  instead: eager attention, not SDPA", **{**lab, "attention": "eager"}),
        Rung("  instead: LoRA on every linear layer", **{**lab, "all_linear": True}),
    ]


def speed_ladder(model, tokenizer, train_texts: list[str], settings: BenchSettings, *,
                 lab_max_length: int, can_bf16: bool) -> list[dict]:
    """Useful tokens per second of a few training steps, adding one piece at a time, on the same recipes.

    Every rung trains a fresh copy of ``model`` (LoRA r=8, AdamW) on the same ``batch_size × ladder_steps``
    recipes, after one warm-up step on other recipes; only the batching, the precision, the attention, the
    length and what trains change (``ladder_rungs``). Useful tokens are the real ones, padding never counted.
    """
    import copy

    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from .chunked_loss import ChunkedLoss
    from .training import FrozenInBf16, speed_up_trainable_tokens, without_right_padding_mask

    if settings.ladder_steps <= 0:
        return []
    end_id = tokenizer.get_vocab().get(END_MARKER)
    size = settings.batch_size
    rows = tokenizer(train_texts[:size * (settings.ladder_steps + 1)])["input_ids"]
    warm_up, timed = rows[:size], rows[size:]
    device = _device()

    def batches(rung: Rung, recipes: list[list[int]]) -> list[dict]:
        length = lab_max_length if rung.whole else settings.baseline_max_length
        recipes = [row[:length] for row in recipes]
        if rung.batching != "random":
            recipes = sorted(recipes, key=len)
        groups = [recipes[start:start + size] for start in range(0, len(recipes), size)]
        if rung.batching == "packed":
            return [pack(group) for group in groups]
        return [pad(group, tokenizer.pad_token_id, None if rung.batching == "grouped" else length)
                for group in groups]

    results = []
    for rung in ladder_rungs():
        if rung.end_row and end_id is None:
            continue
        base = copy.deepcopy(model)
        with contextlib.suppress(Exception):  # an architecture without the switch keeps its own
            base.set_attn_implementation(rung.attention)
        config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                            target_modules=ALL_LINEAR if rung.all_linear else ["q_proj", "v_proj"],
                            lora_dropout=rung.dropout, bias="none", task_type=TaskType.CAUSAL_LM,
                            trainable_token_indices={"embed_tokens": [end_id]} if rung.end_row else None)
        if rung.end_row:
            speed_up_trainable_tokens()
        lora_model = get_peft_model(base, config).to(device)
        lora_model.train()
        optimizer = torch.optim.AdamW([p for p in lora_model.parameters() if p.requires_grad],
                                      lr=settings.learning_rate)
        bf16 = rung.bf16 and can_bf16
        seconds, tokens = 0.0, 0
        with FrozenInBf16(lora_model, enabled=bf16 and rung.frozen_bf16), \
                ChunkedLoss(lora_model, enabled=rung.chunked_loss):
            for timed_step, batch in [(False, b) for b in batches(rung, warm_up)] + \
                                     [(True, b) for b in batches(rung, timed)]:
                real = useful_tokens(batch)
                if rung.no_mask:
                    batch = without_right_padding_mask(batch)
                batch = {key: _to(value, device) for key, value in batch.items()}
                started = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = lora_model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if timed_step:  # the warm-up step pays for first allocations and kernel choices
                    seconds += time.perf_counter() - started
                    tokens += real
        label = rung.label + ("" if bf16 or not rung.bf16 else " (bf16 not native here: float32)")
        results.append({"rung": label, "tokens_per_s": tokens / seconds if seconds else None,
                        "seconds_per_step": seconds / settings.ladder_steps, "useful_tokens": tokens})
        del lora_model, base, optimizer  # before the next rung's copy
        gc.collect()
    return results


# -- the report --------------------------------------------------------------------------------------------
COLUMNS = (("tokens_per_s", "useful tok/s", "{:.0f}"), ("wall_seconds", "wall s", "{:.0f}"),
           ("step_seconds", "train s", "{:.0f}"), ("added_mb", "peak +MB", "{:.0f}"),
           ("perplexity", "held-out ppl", "{:.2f}"), ("stop_rate", "stop at [END]", "{:.0%}"))


def format_table(arms: dict[str, dict]) -> str:
    """The side-by-side table: one row per arm, then ``lab/baseline`` (each column's ratio) as the last line.

    "peak +MB" is the peak memory while training above the memory in use just before it (RSS on a CPU,
    allocated bytes on a GPU): both arms run in one process, so the raw peak would also count what the
    first arm left behind."""
    header = f"{'':14}" + "".join(f"{title:>15}" for _, title, _ in COLUMNS)
    lines = [header]
    for name in ("baseline", "lab"):
        row = arms[name]
        cells = []
        for key, _, fmt in COLUMNS:
            value = row.get(key)
            cells.append(f"{fmt.format(value) if value is not None else '-':>15}")
        lines.append(f"{name:14}" + "".join(cells))
    ratios = []
    for key, _, _ in COLUMNS:
        base, lab = arms["baseline"].get(key), arms["lab"].get(key)
        if base and lab is not None:
            ratios.append(f"{lab / base:>14.2f}x")
        else:
            ratios.append(f"{('n/a' if base == 0 else '-'):>15}")  # n/a: the baseline's value is 0
    lines.append(f"{'lab/baseline':14}" + "".join(ratios))
    return "\n".join(lines)


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
    from datasets import Dataset, DatasetDict
    import torch

    temporary = tempfile.TemporaryDirectory(prefix="lab-bench-") if work_dir is None else None
    can_bf16 = bool(modules["stage4b"].precision_settings()["bf16"])  # the lab trains in bf16 here
    work = Path(work_dir or temporary.name)
    results: dict[str, Any] = {"settings": asdict(settings), "device": _describe_device(),
                               "threads": torch.get_num_threads()}
    arms: dict[str, dict] = {}
    try:
        # -- warm load -------------------------------------------------------------------------------
        started = time.perf_counter()
        model, tokenizer = load_model()
        results["load_seconds"] = time.perf_counter() - started
        _print(f"warm model load: {results['load_seconds']:.2f} s")

        # -- baseline -----------------------------------------------------------------------------------
        _print(f"baseline: {len(train_texts)} recipes, padded to {settings.baseline_max_length}, float32, Trainer")
        baseline = run_baseline(model, tokenizer, train_texts, settings, work / "baseline", modules["stage3"])
        arms["baseline"] = _measure(baseline, tokenizer, heldout_texts, prompts, settings, "baseline", bf16=can_bf16)
        del model, baseline["model"]  # the next arm loads its own copy; this one's memory goes first
        gc.collect()

        # -- lab ---------------------------------------------------------------------------------------------
        model, tokenizer = load_model()
        splits = DatasetDict({"train": Dataset.from_dict({"text": list(train_texts)}),
                              # run_training ends with one validation pass: two recipes keep it short;
                              # the perplexity below is computed for both arms the same way
                              "validation": Dataset.from_dict({"text": list(heldout_texts[:2])})})
        _print(f"lab: {len(train_texts)} recipes, run_training's defaults")
        lab = run_lab(model, tokenizer, splits, settings, work / "lab", modules)
        lab_model = lab.pop("model")
        arms["lab"] = _measure({**lab, "model": lab_model}, tokenizer, heldout_texts, prompts, settings, "lab",
                               bf16=can_bf16)
        lengths = recipe_lengths_after_prompt(tokenizer, train_texts)  # the configured tokenizer: [END] is one token

        # -- evaluation and generation, the fast way and the slow way (on the lab's model) ------------------------
        rows = tokenizer(list(heldout_texts[:settings.compare_size]))["input_ids"]
        packed_eval = heldout_perplexity(lab_model, rows, pad_id=tokenizer.pad_token_id, packed=True)
        padded_eval = heldout_perplexity(lab_model, rows, pad_id=tokenizer.pad_token_id, packed=False,
                                         pad_to=max(768, max(len(row) for row in rows)))
        results["eval"] = {"packed": packed_eval, "padded": padded_eval}
        _print(f"held-out perplexity evaluation of {len(rows)} recipes: packed {packed_eval['seconds']:.1f} s "
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
        results["generation"] = {"batched_kv": _gen_row(batched), "one_by_one_kv": _gen_row(one_by_one),
                                 "one_no_cache": _gen_row(no_cache), "max_new_tokens": compare}
        _print(f"generation, ≤ {compare} new tokens: {len(prompts)} prompts batched with KV cache "
               f"{_rate(batched)} tok/s, {len(few)} one by one with KV cache {_rate(one_by_one)} tok/s, "
               f"one prompt without KV cache {_rate(no_cache)} tok/s")
        del model, lab_model, arms["lab"]["model"]  # freed; and the saved result carries no model repr
        gc.collect()

        # -- each piece's gain ----------------------------------------------------------------------------------
        if settings.ladder_steps > 0:
            model, tokenizer = load_model()
            modules["stage3"].configure_tokenizer(tokenizer, model)
            ladder = speed_ladder(model, tokenizer, list(train_texts), settings, lab_max_length=lab["max_length"],
                                  can_bf16=can_bf16)
            results["ladder"] = ladder
            del model
            gc.collect()
            _print("speed ladder (useful tokens/s of training steps, one piece at a time):")
            first = ladder[0]["tokens_per_s"] if ladder else None
            for rung in ladder:
                gain = f"{rung['tokens_per_s'] / first:.2f}x" if first and rung["tokens_per_s"] else "-"
                _print(f"  {rung['rung']:<56} {rung['tokens_per_s'] or 0:8.0f} tok/s  "
                       f"{rung['seconds_per_step']:6.2f} s/step  {gain} of rung 1")

        # -- the table --------------------------------------------------------------------------------------
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
        _print(f"stop at [END] / at end-of-sequence: baseline {arms['baseline']['stop_rate']:.0%} / "
               f"{arms['baseline']['eos_rate']:.0%}, lab {arms['lab']['stop_rate']:.0%} / "
               f"{arms['lab']['eos_rate']:.0%}; complete recipes (DIRECTIONS, then [END]): baseline "
               f"{arms['baseline']['complete_rate']:.0%}, lab {arms['lab']['complete_rate']:.0%} "
               f"({len(prompts)} prompts × {settings.samples_per_prompt} samples, temperature "
               f"{settings.temperature:g}, top-p {settings.top_p:g}, ≤ {settings.max_new_tokens} tokens, "
               f"{arms['lab']['generation_precision']}); greedy (≤ {settings.short_budget} tokens): "
               f"baseline {arms['baseline']['greedy_stop_rate']:.0%}, lab {arms['lab']['greedy_stop_rate']:.0%}")
        _print(f"stop at [END] within {settings.short_budget} new tokens: baseline "
               f"{arms['baseline']['stop_rate_short']:.0%}, lab {arms['lab']['stop_rate_short']:.0%}; the training "
               f"recipes themselves end within " + ", ".join(
                   f"{budget} tokens after their title: {results['recipes_within'][str(budget)]:.0%}"
                   for budget in budgets))
        _print(f"padding share of the training batches: baseline {arms['baseline']['padding_share']:.1%}, "
               f"lab {arms['lab']['padding_share'] or 0:.1%}; recipes cut before their [END]: baseline "
               f"{arms['baseline']['cut_before_end']}, lab {arms['lab']['cut_before_end']} of {len(train_texts)}")
        _print(f"device: {results['device']}, {results['threads']} threads; precision baseline "
               f"{arms['baseline']['precision']}, lab {arms['lab']['precision']}; learning rate baseline "
               f"{arms['baseline']['learning_rate']:g}, lab {arms['lab']['learning_rate']:g}; memory added by "
               f"training: baseline {arms['baseline']['added_mb']:.0f} MB, lab {arms['lab']['added_mb']:.0f} MB")
        results["peak_flops"] = peak_flops()
        _print(arithmetic_line(arms, results["peak_flops"], results["device"]))
        _print()
        _print(results["table"])
        if store is not None:
            store.put_result("stage4b", "bench", json.loads(json.dumps(results, default=str)))
    finally:
        if temporary is not None:
            temporary.cleanup()
    return results


def arithmetic_line(arms: dict[str, dict], peak: float | None, device: str) -> str:
    """Model FLOPs per second of both arms' training steps and, where the device's peak is known, its share."""
    def rate(arm: dict) -> str:
        value = arm.get("flops_per_s")
        if value is None:
            return "-"
        share = f" ({value / peak:.1%} of the peak)" if peak else ""
        return f"{value / 1e9:,.0f} GFLOP/s{share}"

    known = (f"peak bf16 {peak / 1e12:,.1f} TFLOP/s" if peak else
             f"no peak known for {device} (set {PEAK_ENV} in TFLOP/s to compare)")
    return (f"model arithmetic of the training steps (real tokens only; lessons/engine/flops.py): "
            f"baseline {rate(arms['baseline'])}, lab {rate(arms['lab'])}; {known}")


def _rate(result: dict) -> str:
    return f"{result['tokens_per_s']:.1f}" if result.get("tokens_per_s") else "-"


def _gen_row(result: dict) -> dict:
    return {key: result[key] for key in ("seconds", "tokens", "tokens_per_s", "stop_rate")}


def _measure(arm: dict, tokenizer, heldout_texts, prompts, settings: BenchSettings, name: str, *,
             bf16: bool) -> dict:
    """Held-out perplexity (whole recipes, float32) and the stop rate (sampled, and greedy; in bf16 where the
    lab trains in bf16), the same for both arms. Greedy gets ``short_budget`` tokens: it is there to show the
    loops, which 320 tokens show as well as 512."""
    from .training import FrozenInBf16

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
    _print(f"{name}: held-out perplexity {evaluation['perplexity']:.2f}; stopped at [END] in "
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


def _describe_device() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    return f"CPU {name} ({os.cpu_count()} cores)"


# -- the command ---------------------------------------------------------------------------------------------
def bench_data(settings: BenchSettings, stage2) -> tuple[list[str], list[str], list[str]]:
    """Training texts, held-out texts and stop-rate prompts: stage 2's split of all valid recipes, sliced."""
    splits = stage2.prepare_splits(stage2.load_recipes(settings.source), None, 0.1, settings.seed)
    train, validation = splits["train"], splits["validation"]
    needed = settings.n_heldout + settings.n_prompts
    n_train = len(train) if settings.n_train < 0 else settings.n_train
    if len(train) < n_train or len(validation) < needed:
        raise ValueError(f"{settings.source!r} has {len(train)} training and {len(validation)} validation recipes; "
                         f"the bench needs {settings.n_train} and {needed}")
    train_texts = list(train.select(range(n_train))["text"])
    heldout = validation.select(range(settings.n_heldout))
    prompt_titles = validation.select(range(settings.n_heldout, needed))["title"]
    prompts = [PROMPT_TEMPLATE.format(title=title) for title in prompt_titles]
    return train_texts, list(heldout["text"]), prompts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lessons bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"a smaller run (under 15 min on a 2-core CPU): {QUICK}")
    for item in fields(BenchSettings):
        option = "--" + item.name.replace("_", "-")
        if item.type in ("bool", bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                                help=item.metadata.get("help"))
        else:
            kind = {"int": int, "float": float, "float | None": float, "str": str}.get(str(item.type), str)
            parser.add_argument(option, type=kind, default=None, help=item.metadata.get("help"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    values = dict(QUICK) if args.quick else {}
    values.update({item.name: getattr(args, item.name) for item in fields(BenchSettings)
                   if getattr(args, item.name) is not None})
    settings = BenchSettings(**values)
    quiet_library_notices()  # the table and its lines, not notices for library authors

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .assets import ensure_model_cache, resolve_model_source
    from .modules import load_stage_module
    from .store import Store

    ensure_model_cache(log=lambda *_: None)  # the safetensors cache: the warm loads below are timed
    source = resolve_model_source(None)
    modules = {key: load_stage_module(key, reference=True) for key in ("stage2", "stage3", "stage4a", "stage4b")}
    train_texts, heldout_texts, prompts = bench_data(settings, modules["stage2"])
    _print(f"bench: {settings}")

    def load_model():
        return AutoModelForCausalLM.from_pretrained(source), AutoTokenizer.from_pretrained(source)

    with Store() if settings.save else contextlib.nullcontext() as store:
        run_bench(settings, load_model=load_model, train_texts=train_texts, heldout_texts=heldout_texts,
                  prompts=prompts, modules=modules, store=store)
    return 0
