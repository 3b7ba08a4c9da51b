"""The speed ladder: useful tokens per second of a few training steps, adding one speed trick at a time."""
from __future__ import annotations

import contextlib
import gc
import time
from dataclasses import dataclass

from ..engine.constants import END_MARKER
from ..engine.measure import pack, pad, to_device, training_device, useful_tokens
from ..engine.speed import ChunkedLoss, FrozenInBf16, speed_up_trainable_tokens, without_right_padding_mask
from .settings import BenchSettings


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

    if settings.ladder_steps <= 0:
        return []
    end_id = tokenizer.get_vocab().get(END_MARKER)
    size = settings.batch_size
    rows = tokenizer(train_texts[:size * (settings.ladder_steps + 1)])["input_ids"]
    warm_up, timed = rows[:size], rows[size:]
    device = training_device()

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
                batch = {key: to_device(value, device) for key, value in batch.items()}
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
