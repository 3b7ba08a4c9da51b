"""The bench's two arms: the original assignment's training recipe, and LoRA Kitchen's default path."""
from __future__ import annotations

import time
from pathlib import Path

from ..engine.flops import training_flops
from ..engine.measure import current_memory_mb, padding_share, peak_memory_mb, reset_peak_memory
from .settings import BenchSettings


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
    from ..engine.store import Store
    from ..engine.training import TrainSettings, run_training

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
