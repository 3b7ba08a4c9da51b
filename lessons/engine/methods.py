"""Three ways to fine-tune, measured the same way: LoRA, full fine-tuning and QLoRA.

* ``lora``: the base model frozen, small ``B·A`` corrections on the attention layers train (stage 4B).
* ``full``: every weight trains; there is no adapter, so the whole model is saved; the steps must be far
  smaller than LoRA's (``FULL_LEARNING_RATE``), because each one moves the pretrained weights themselves.
* ``qlora``: the base loaded in 4-bit (NF4, ``bitsandbytes``) and frozen, LoRA on top, computing in float32
  (bfloat16 on a GPU that has it).

``lessons.engine.training.run_training`` calls these at its phases: ``check_method`` (``TrainSettings``),
``load_4bit`` / ``quantize_4bit`` (``prepare_model``), ``train_every_weight`` and ``ready_for_4bit_training``
(``add_lora``), ``save_full_model`` and ``final_measurements`` (``save_and_summarise``). Whatever the method,
a run's summary ends with the same figures: trainable parameters and their share, peak memory (and which
memory that is), tokens/s, held-out perplexity and stop rate on the run's own validation split, and the
bytes saved; a QLoRA run adds its model's footprint in float32 and in 4-bit.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

from .constants import END_MARKER
from .measure import current_memory_mb, generate, heldout_perplexity, peak_memory_mb, reset_peak_memory

METHODS = {
    "lora": "LoRA: the base frozen, small corrections on the attention layers train",
    "full": "full fine-tuning: every weight trains, the whole model is saved",
    "qlora": "QLoRA: the base loaded in 4-bit (NF4) and frozen, LoRA on top",
}
# Full fine-tuning moves the pretrained weights themselves: LoRA's 5e-3 wrecks them in a few steps
# (measured in docs/benchmarks.md, "Full fine-tuning vs LoRA vs QLoRA").
FULL_LEARNING_RATE = 1e-4
SAVED_MODEL = "model"  # under a full fine-tuning run's output_dir: the whole fine-tuned model (+ tokenizer)


def check_method(method: str) -> str:
    """``method`` if it is one of ``METHODS``; otherwise a ``ValueError`` that names the choices."""
    if method not in METHODS:
        choices = ", ".join(f"'{name}' ({text})" for name, text in METHODS.items())
        raise ValueError(f"Unknown fine-tuning method {method!r}. Choose one of: {choices}.")
    return method


# -- QLoRA: can this machine load a model in 4-bit? -------------------------------------------------------
@lru_cache(maxsize=1)
def qlora_unsupported_reason() -> str | None:
    """None when bitsandbytes can load and run a 4-bit layer here; otherwise why not, in words.

    Not a guess from the hardware's name: a 4-bit layer is built on this machine's device and run forward.
    """
    try:
        import bitsandbytes as bnb
    except Exception as error:  # noqa: BLE001 - missing, or broken by a missing native library
        return (f"bitsandbytes cannot be imported here ({type(error).__name__}: {error}); QLoRA needs it to "
                "store the base model in 4-bit.")
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, compute_dtype=torch.float32, quant_type="nf4").to(device)
        layer(torch.ones(1, 64, device=device))
    except Exception as error:  # noqa: BLE001 - whatever bitsandbytes refuses with, the page says it
        return (f"bitsandbytes {getattr(bnb, '__version__', '?')} refused a 4-bit layer on this {device.upper()} "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}).")
    return None


def quantization_config():
    """NF4 4-bit weights, computing in bfloat16 on a GPU that has it, else float32 (what the CPU computes in)."""
    import torch
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)


def load_4bit(source: str | Path):
    """The model in ``source`` (a folder or model id) with its linear layers stored in 4-bit."""
    import torch
    from transformers import AutoModelForCausalLM

    reason = qlora_unsupported_reason()
    if reason:
        raise RuntimeError(f"QLoRA is not possible on this machine: {reason} Choose method 'lora' instead.")
    device_map = {"": 0} if torch.cuda.is_available() else "cpu"
    return AutoModelForCausalLM.from_pretrained(str(source), quantization_config=quantization_config(),
                                                device_map=device_map)


def quantize_4bit(model):
    """A 4-bit copy of a model already in memory (a test's tiny one): saved to a temporary folder, loaded back."""
    with tempfile.TemporaryDirectory(prefix="lab-4bit-") as folder:
        model.save_pretrained(folder)
        quantized = load_4bit(folder)
    quantized.config._name_or_path = model.config._name_or_path  # not the temporary folder, gone now
    return quantized


def float32_footprint(source: str | Path) -> int:
    """Bytes the model in ``source`` takes with every weight in float32, from its shapes (built on the meta device,
    so nothing is loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(source))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    return int(skeleton.get_memory_footprint())


def ready_for_4bit_training(model):
    """peft's preparation of a 4-bit model for training (norms in float32, inputs that carry gradients).

    Gradient checkpointing stays off, as in the LoRA run: QLoRA's only difference here is the 4-bit base.
    """
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def counted_as_weights(model, counts: dict) -> dict:
    """Stage 4B's ``trainable_parameters`` counts with each 4-bit layer counted as the weights it stands for.

    bitsandbytes packs two 4-bit weights into one byte, so a plain count of a 4-bit model's parameters finds
    only half of each quantized layer's weights; the share trained would look larger than it is.
    """
    total = 0
    for parameter in model.parameters():
        shape = getattr(getattr(parameter, "quant_state", None), "shape", None)
        total += math.prod(shape) if shape is not None else parameter.numel()
    return {**counts, "total": total, "percent": 100 * counts["trainable"] / total}


# -- full fine-tuning -------------------------------------------------------------------------------------
def train_every_weight(model, count_trainable) -> dict:
    """Every parameter of ``model`` set to train; the count back from ``count_trainable`` (stage 4B's
    ``trainable_parameters``), so the figure comes from the same function as LoRA's."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return count_trainable(model)


def folder_bytes(path: str | Path) -> int:
    """The bytes of every file under ``path``."""
    return sum(file.stat().st_size for file in Path(path).rglob("*") if file.is_file())


def save_full_model(model, path: str | Path) -> dict:
    """The whole fine-tuned model in ``path``: ``{"path", "files": {name: bytes}, "bytes"}``, the same shape as
    stage 4B's ``save_adapter`` returns (the tokenizer, saved after, is not counted in either)."""
    path = Path(path)
    model.save_pretrained(path)
    files = {file.name: file.stat().st_size for file in sorted(path.iterdir()) if file.is_file()}
    return {"path": str(path), "files": files, "bytes": sum(files.values())}


# -- the same measurements for every method ---------------------------------------------------------------
def memory_kind() -> str:
    """What ``start_memory``/``peak_memory_growth`` measure on this machine, in words for a table."""
    import torch

    return ("GPU memory allocated (torch.cuda.max_memory_allocated)" if torch.cuda.is_available()
            else "peak resident memory growth of the training process (Linux VmHWM)")


def start_memory() -> float:
    """Start measuring: the memory in use now (MB), with a fresh peak from here."""
    reset_peak_memory()
    return current_memory_mb()


def peak_memory_growth(start_mb: float) -> float:
    """The peak since ``start_memory``, above what was in use then (MB): what loading and training added."""
    return max(0.0, peak_memory_mb() - start_mb)


def title_prompt(recipe_text: str) -> str:
    """A held-out recipe's first line (``RECIPE: …``) and a line break: the model is to write the rest and stop."""
    return recipe_text.split("\n", 1)[0] + "\n"


def final_measurements(model, tokenizer, validation_rows: list[list[int]], validation_texts: list[str], *,
                       batch_size: int, prompts: int, max_new_tokens: int) -> dict:
    """Held-out perplexity and stop rate of a trained model, on the run's own validation split.

    Perplexity: ``measure.heldout_perplexity`` over every validation row (padding never counted). Stop rate:
    ``measure.generate``, greedy, from the titles of the first ``prompts`` validation recipes, the share that
    writes ``[END]`` within ``max_new_tokens``.
    """
    import torch

    heldout = heldout_perplexity(model, validation_rows, pad_id=tokenizer.pad_token_id, packed=False,
                                 batch_size=batch_size)
    result = {"heldout_perplexity": heldout["perplexity"], "heldout_tokens": heldout["tokens"]}
    chosen = [title_prompt(text) for text in validation_texts[:max(0, prompts)]]
    if chosen and END_MARKER in tokenizer.get_vocab():
        with torch.no_grad():
            generated = generate(model, tokenizer, chosen, max_new_tokens=max_new_tokens)
        result.update(stop_rate=generated["stop_rate"], stop_prompts=len(chosen), stop_budget=max_new_tokens,
                      generate_tokens_per_s=generated["tokens_per_s"])
    return result


# -- the benchmark: every method on the same settings, each in its own process ---------------------------
def measure_one(settings, folder: Path) -> dict:
    """Train ``settings`` with the reference solutions in ``folder`` (its own store); the run's summary."""
    from .modules import load_stage_module
    from .store import Store
    from .training import run_training

    modules = {key: load_stage_module(key, reference=True) for key in ("stage2", "stage3", "stage4a", "stage4b")}
    with Store(folder / "bench.sqlite", learner="bench") as store:
        return run_training(settings, store=store, run_id=f"{settings.method}-{settings.full_learning_rate:g}",
                            modules=modules, output_dir=folder / settings.method)


TABLE_COLUMNS = ("method", "learning rate", "trainable", "peak MB", "tokens/s", "held-out ppl", "stop rate",
                 "saved MB", "4-bit footprint")


def table_row(summary: dict) -> list[str]:
    """One line of the benchmark's table from a run's summary."""
    trainable = summary.get("trainable") or {}
    footprint = (f"{summary['footprint_float32_bytes'] / 1e6:.0f} → {summary['footprint_4bit_bytes'] / 1e6:.0f} MB"
                 if summary.get("footprint_4bit_bytes") else "")
    return [summary.get("method", "?"), f"{summary.get('learning_rate', 0):g}",
            f"{trainable.get('percent', 0):.2f} %", f"{summary.get('peak_memory_mb', 0):.0f}",
            f"{summary.get('tokens_per_s') or 0:.0f}", f"{summary.get('heldout_perplexity') or 0:.2f}",
            f"{summary.get('stop_rate', 0):.2f}", f"{(summary.get('saved_bytes') or 0) / 1e6:.1f}", footprint]


def main(argv: list[str] | None = None) -> int:
    """``python -m lessons.engine.methods --steps 10 --recipes 64 --max-length 128``: each method on the embedded
    model, one fresh process each (so each peak memory is that run's alone), then a table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--methods", default="lora,full,qlora", help="comma-separated, from: " + ", ".join(METHODS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--recipes", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--full-lr", type=float, default=FULL_LEARNING_RATE, help="full fine-tuning's learning rate")
    parser.add_argument("--stop-prompts", type=int, default=4, help="held-out titles generated for the stop rate")
    parser.add_argument("--parallel", action="store_true",
                        help="run the methods at the same time (each still in its own process), not one by one")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one method, JSON out
    options = parser.parse_args(argv)
    from .training import TrainSettings

    if options.one:
        settings = TrainSettings(method=options.methods, max_steps=options.steps, n_recipes=options.recipes,
                                 max_length=options.max_length, eval_every=options.steps,
                                 full_learning_rate=options.full_lr, stop_rate_prompts=options.stop_prompts)
        with tempfile.TemporaryDirectory(prefix="lab-methods-") as folder:
            summary = measure_one(settings, Path(folder))
        print("SUMMARY " + json.dumps(summary, default=str), flush=True)
        return 0
    rows, running = [], []
    for method in [check_method(name.strip()) for name in options.methods.split(",")]:
        command = [sys.executable, "-m", "lessons.engine.methods", "--one", "--methods", method,
                   "--steps", str(options.steps), "--recipes", str(options.recipes),
                   "--max-length", str(options.max_length), "--full-lr", str(options.full_lr),
                   "--stop-prompts", str(options.stop_prompts)]
        print(f"[methods] {method}: {' '.join(command[1:])}", flush=True)
        log = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a full pipe would stall a parallel child
        running.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True), log))
        if not options.parallel:
            running[-1][0].wait()
    for child, log in running:
        child.wait()
        log.seek(0)
        out = log.read()
        lines = [line for line in out.splitlines() if line.startswith("SUMMARY ")]
        if child.returncode or not lines:
            print(out[-4000:], file=sys.stderr)
            return 1
        summary = json.loads(lines[-1][len("SUMMARY "):])
        print("[methods] " + lines[-1], flush=True)  # every figure, for the record
        rows.append(table_row(summary))
    print(f"{options.steps} steps, {options.recipes} recipes, {options.max_length} tokens, "
          f"{'at the same time' if options.parallel else 'one by one'}; memory: {memory_kind()}")
    print(" | ".join(TABLE_COLUMNS))
    for row in rows:
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
