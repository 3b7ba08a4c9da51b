"""Stage 4B — LoRA training: teach the model recipes by training 0.34 % of it.

Stage 4A trained by nudging *every* parameter. For SmolLM2 that is 134.5
million numbers, each with a gradient and two more numbers the optimizer keeps
for it: four copies of the model in memory, and a full copy to save for every
experiment. And a small recipe dataset pushing on all of them can wear away
what the model learned before.

LoRA (Low-Rank Adaptation) leaves the pretrained model *frozen* and learns a
small correction next to some of its layers. A layer computes ``W x``: it
multiplies its input ``x`` by a big table of numbers, the matrix ``W``
(576 × 576 for one of SmolLM2's layers). LoRA adds two thin matrices, ``A``
(r × 576) and ``B`` (576 × r), with a small *rank* r such as 8, and computes::

    W x  +  (alpha / r) · B (A x)

Only A and B are trained. Together they make a correction as big as ``W``, but
one that can only push in r directions. The bet, which works remarkably well,
is that adapting a model to a new task needs few directions.

* **B starts at zero**, so ``B A x = 0``: before the first step the model is
  exactly the base model. Training starts from what the model already knows.
  (A starts random; if both were zero, neither would ever get a gradient.)
* **r**, the rank: how many directions the correction has. Bigger r, more
  capacity, more parameters.
* **alpha** scales the correction: ``alpha / r`` (16 / 8 = 2 here). Keeping
  alpha / r fixed lets you change r without retuning the learning rate.
* **Which layers**: the *attention* layers, where each token looks back at the
  earlier tokens and picks what to use from them. SmolLM2 names two of them
  ``q_proj`` and ``v_proj``; GPT-2 has one combined layer, ``c_attn``. The
  other layers are left alone, which keeps the adapter small.

The count, for SmolLM2 with r = 8 on ``q_proj`` (576 → 576) and ``v_proj``
(576 → 192) in each of its 30 layers::

    q_proj: 8 × 576 + 576 × 8 = 9,216      v_proj: 8 × 576 + 192 × 8 = 6,144
    (9,216 + 6,144) × 30 layers = 460,800 trainable, 0.34 % of 134,975,808

The adapter file is those 460,800 numbers: under 2 MB instead of 540 MB.

Then the training loop of stage 4A, run for you by transformers' ``Trainer``:
batches, forward, backward, step, zero, plus a learning rate that changes as
training goes on, a validation loss every few steps, saved checkpoints, and
callbacks that send the numbers to the dashboard.

**Why a model may never stop.** A fine-tuned model stops when it writes
``[END]``. But ``[END]`` is the token stage 3 added, and its row in the
embedding table is new and random: nothing has taught the model when to write
it, so at first it almost never does. It finishes a recipe and starts another.
LoRA on the attention layers does not change that row. So the lab's training
engine starts ``[END]``'s row as a copy of the row of a token the model already
writes at the end of an answer (``<|im_end|>``), trains the row along with the
adapter, keeps recipes whole so that every one of them ends in ``[END]``, and
uses a learning rate big enough for a short run to get somewhere. Two things
to know when you try the result: a model that always takes its favourite next
token (greedy, stage 6) can go round in a loop ("1 cup of celery; 1 cup of
celery; …") and never reach the end; and most recipes are long, so a
generation cut off after 100 tokens tells you nothing about stopping.

**Speed.** When recipes of very different lengths share a batch, the short
ones are padded with filler that the model computes anyway. The lab puts
recipes of similar length in the same batch, so little filler is needed;
computes with smaller numbers (bfloat16) where the hardware has them; and
leaves out LoRA dropout, a random switching-off of parts of the correction
that costs time and helps little in a short run. And at every position the
model's last layer gives a score to every token of the vocabulary: for a batch
of long recipes that table of scores is bigger than the model. The lab works
through it 128 positions at a time, with the same result.
``python -m lessons bench`` measures each piece against the original recipe;
the dashboard draws it (the figures are in ``docs/benchmarks.md``).

**Full fine-tuning, LoRA, QLoRA.** Stage 4A's way, every weight trains, is *full
fine-tuning*. It can change anything, so it can fit the recipes most closely, but
it pays for that: a gradient and two optimizer numbers for each of the 134.5
million weights, a whole model to save for every experiment, and a learning rate
far smaller than LoRA's, because each step moves the pretrained weights
themselves (LoRA's big steps only move a correction that starts at zero).
*QLoRA* keeps LoRA and shrinks what stays frozen: the base model's layers are
stored in 4 bits per weight instead of 32 (NF4: 16 levels placed to fit the
bell-shaped spread of a layer's weights), turned back into numbers to compute
with as each layer runs. The adapter trains in full precision on top and learns
around the small rounding errors. The page's comparison trains your settings
each way and measures them the same way: how much trains, peak memory, speed,
perplexity and stop rate on the held-out recipes, and what is saved. Read the
conclusion from your own numbers.

Fill in the TODOs top to bottom, then run ``.venv/bin/python -m pytest checks/stage4b``
in the project folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from peft import LoraConfig, TaskType, get_peft_model
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

from lessons.engine.errors import LabError
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# Defaults measured on the 2-core CPU: 4 recipes of 256 tokens per step fit in
# memory and take ~3.5 s with bf16 (~5.7 s in float32); lr 2e-4 is the usual
# LoRA learning rate (10x what full fine-tuning would use: the adapter starts at zero).
DEFAULT_BATCH_SIZE = 4
DEFAULT_LEARNING_RATE = 2e-4
# Set LAB_BF16=1 or 0 to force bfloat16 on or off (for measuring; see precision_settings).
BF16_ENV = "LAB_BF16"


def attention_modules(model) -> list[str]:
    """The names of the attention layers LoRA should adapt, for this model's architecture.

    Each architecture names its layers its own way. Look at the names of the
    modules (``model.named_modules()``) and pick the attention projections:

    * GPT-2 (``gpt2``, ``distilgpt2``): queries, keys and values in one layer, ``c_attn``;
    * Llama (SmolLM2): one layer each, ``q_proj``, ``k_proj``, ``v_proj``, plus the
      output ``o_proj``; the LoRA paper's classic choice is queries and values.

    Not the MLP (``c_fc`` in GPT-2; ``gate_proj``, ``up_proj``, ``down_proj`` in Llama).

    Example:
        >>> attention_modules(smollm2)
        ['q_proj', 'v_proj']
        >>> attention_modules(distilgpt2)
        ['c_attn']
    """
    # TODO: What does {name.split(".")[-1] for name, _ in model.named_modules()} contain for each architecture?
    #       Which of those names are attention (query, key, value), and which belong to the MLP?
    raise todo()
    raise LabError(f"{type(model).__name__} has neither GPT-2's c_attn nor Llama's q_proj/v_proj: name its "
                   "attention layers yourself (TrainSettings.target_modules).")


def make_lora_config(r: int = 8, alpha: int = 16, target_modules: list[str] | None = None,
                     dropout: float = 0.05) -> LoraConfig:
    """A peft ``LoraConfig`` for causal language modelling.

    Args:
        r: the rank, how many directions the correction has (default 8).
        alpha: the scale; the correction is multiplied by ``alpha / r`` (default 16, so 2).
        target_modules: the layer names to adapt, from ``attention_modules``.
        dropout: dropout on the LoRA branch only while training, a little
            protection against memorising a small dataset (default 0.05).

    ``task_type=CAUSAL_LM`` tells peft what kind of model it wraps (next-token
    prediction), so the wrapped model keeps ``generate`` and the loss.

    Example:
        >>> config = make_lora_config(8, 16, ["q_proj", "v_proj"], 0.05)
        >>> config.r, config.lora_alpha, sorted(config.target_modules), config.task_type
        (8, 16, ['q_proj', 'v_proj'], 'CAUSAL_LM')
    """
    # TODO: LoraConfig's arguments are r, lora_alpha, target_modules, lora_dropout, bias and task_type.
    #       Which TaskType is "predict the next token"?
    raise todo()


def apply_lora(model, config: LoraConfig):
    """Wrap ``model`` with LoRA adapters: the base frozen, A and B added and trainable.

    Returns a ``PeftModel``. It behaves like the model it wraps (same forward,
    same ``generate``), and at first gives *exactly* the same outputs, because
    every B is zero. Note that peft changes ``model`` in place: its adapted
    layers become LoRA layers.

    Example:
        >>> lora_model = apply_lora(model, make_lora_config(8, 16, ["q_proj", "v_proj"], 0.05))
        >>> trainable_parameters(lora_model)
        {'trainable': 460800, 'total': 134975808, 'percent': 0.341...}
    """
    # TODO: peft has one function that wraps a model with the adapters a LoraConfig describes: which?
    #       After wrapping, which parameters still have requires_grad=True? Print a few names.
    #       The lines after this TODO use `lora_model`: your code must set it.
    raise todo()
    return lora_model


def trainable_parameters(model) -> dict:
    """How many parameters training will change, out of how many.

    Returns ``{"trainable": int, "total": int, "percent": 100 × trainable / total}``.

    Example:
        >>> trainable_parameters(lora_model)          # SmolLM2, r=8 on q_proj and v_proj
        {'trainable': 460800, 'total': 134975808, 'percent': 0.341...}
    """
    # TODO: Stage 1's count_parameters did half of this; which parameters have requires_grad?
    #       A percent is out of 100, not out of 1.
    raise todo()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (avx512_bf16 or AMX), where autocast pays off."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line for line in info if line.startswith("flags")), "")
    except OSError:  # not Linux: assume emulated bf16, which is slower than float32
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def precision_settings() -> dict:
    """Mixed-precision arguments for ``TrainingArguments`` on this machine.

    bfloat16 keeps float32's range with fewer digits: the matrix products run
    in bf16 (faster, half the memory traffic) while the weights stay float32.

    * NVIDIA GPU: bf16 where supported (Ampere and newer), else float16;
    * CPU: bf16 only with native support (``avx512_bf16`` or AMX), where a
      training step takes clearly less time than in float32. Without native
      support bf16 is emulated and slower than float32.

    ``LAB_BF16=1`` or ``0`` forces it (for measuring).
    """
    on_cuda = torch.cuda.is_available()
    on_mps = not on_cuda and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if os.environ.get(BF16_ENV) in ("0", "1"):
        bf16 = os.environ[BF16_ENV] == "1"
    elif on_cuda:
        bf16 = torch.cuda.is_bf16_supported()
    else:
        bf16 = not on_mps and cpu_has_native_bf16()
    return {"bf16": bf16, "fp16": on_cuda and not bf16, "use_cpu": not on_cuda and not on_mps}


def make_training_args(output_dir: str | Path, *, batch_size: int = DEFAULT_BATCH_SIZE,
                       learning_rate: float = DEFAULT_LEARNING_RATE, epochs: float = 1.0, max_steps: int = -1,
                       eval_every: int = 10, log_every: int = 1, save_every: int | None = None,
                       seed: int = 42) -> TrainingArguments:
    """The ``TrainingArguments`` for a LoRA run: how long, how fast, how often to measure.

    Args:
        output_dir: where the Trainer writes its checkpoints.
        batch_size: recipes per step, for training and for validation (default 4).
        learning_rate: the peak learning rate (default 2e-4); it then falls linearly to 0.
        epochs: passes over the training recipes (default 1.0); ignored when ``max_steps`` > 0.
        max_steps: stop after this many steps (default -1: run the epochs).
        eval_every: measure the validation loss every this many steps (default 10).
        log_every: report the training loss every this many steps (default 1: a live curve).
        save_every: write a checkpoint every this many steps (default: as often as eval_every),
            so a crashed run can resume.
        seed: for the shuffling and the LoRA initialisation (default 42).

    Mixed precision (bf16 where it is faster) comes from ``precision_settings()``,
    and ``report_to="none"`` keeps the Trainer from looking for online trackers.

    Example:
        >>> args = make_training_args("runs/demo", max_steps=60, eval_every=20)
        >>> args.per_device_train_batch_size, args.learning_rate, args.eval_strategy.value, args.eval_steps
        (4, 0.0002, 'steps', 20)
    """
    precision = precision_settings()
    # TODO: Which TrainingArguments fields hold the batch size per device, for training and for evaluation?
    #       Validation every eval_every steps needs both an eval_strategy and eval_steps; logging has logging_steps.
    raise todo()


def train(model, tokenizer, train_dataset, eval_dataset, args: TrainingArguments, *, callbacks=(),
          data_collator=None, resume_from_checkpoint: str | bool | None = None) -> Trainer:
    """Train ``model`` (your LoRA model) with transformers' ``Trainer``; return the trainer.

    The Trainer runs stage 4A's loop for you, ``args.max_steps`` times (or
    ``epochs`` passes): collate a batch, forward, backward, optimizer step (AdamW),
    zero; every ``eval_steps`` it measures the validation loss, every
    ``logging_steps`` it reports, and every ``save_steps`` it writes a checkpoint.

    Args:
        train_dataset, eval_dataset: tokenized rows (``input_ids``, ``attention_mask``).
        args: from ``make_training_args``.
        callbacks: ``TrainerCallback`` objects told about every step, log and evaluation
            (the lab's passes each logged number to the dashboard).
        data_collator: default: the causal-LM collator of stage 4A (``mlm=False``).
        resume_from_checkpoint: a checkpoint folder, or True for the newest in
            ``args.output_dir``, to go on where a stopped run left off.

    Returns:
        The ``Trainer``; ``trainer.state.log_history`` holds every logged number.

    Example:
        >>> trainer = train(lora_model, tokenizer, tokenized["train"], tokenized["validation"], args)
        >>> [round(entry["loss"], 2) for entry in trainer.state.log_history if "loss" in entry][:3]
        [3.0, 2.95, 2.95]                # SmolLM2, 36 Wikibooks recipes, batch 4, lr 2e-4
    """
    data_collator = data_collator or DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=False)
    # TODO: Trainer takes the model, the args, both datasets, the data_collator, and the callbacks (as a list).
    #       Give it the tokenizer as processing_class, so checkpoints can be reloaded with it.
    #       The lines after this TODO use `trainer`: your code must set it.
    raise todo()
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def save_adapter(model, path: str | Path) -> dict:
    """Save only the LoRA adapter (the A and B matrices and the config), not the base model.

    A ``PeftModel``'s ``save_pretrained`` writes ``adapter_config.json`` and
    ``adapter_model.safetensors``: for SmolLM2 with r=8 on q/v, about 1.9 MB
    instead of the 540 MB of the whole model. To use it, load the same base
    model and put the adapter on top (stage 5).

    One catch: stage 3 grew the vocabulary by one token ([END]). Seeing that, peft
    would save the whole embedding table and output layer too, to be safe:
    228 MB. ``save_embedding_layers=False`` says no. (The lab's training run
    trains the [END] row with the adapter, 576 numbers, so it is saved anyway.)

    Returns (show your work): ``{"path": str, "files": {name: bytes}, "bytes": total}``.

    Example:
        >>> save_adapter(lora_model, "runs/demo/adapter")["files"]
        {'README.md': 5242, 'adapter_config.json': 1162, 'adapter_model.safetensors': 1861216}
    """
    path = Path(path)
    # TODO: Which method of the PeftModel writes a model folder? What does peft put in it?
    #       Would merging the adapter into the base first still give a small file?
    #       The docstring's catch: which argument keeps the embedding table out?
    raise todo()
    files = {file.name: file.stat().st_size for file in sorted(path.iterdir()) if file.is_file()}
    return {"path": str(path), "files": files, "bytes": sum(files.values())}
