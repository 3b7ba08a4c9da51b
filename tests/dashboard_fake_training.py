"""A stand-in trainer for the job tests: the shape of ``lessons.engine.training``, no model.

``LAB_JOBS_TRAINER=tests.dashboard_fake_training`` makes ``lessons.engine.jobs``
use it, so the tests exercise starting, watching, killing, cancelling and
resuming a background job in seconds, whatever state the real trainer is in.

It "trains" ``max_steps`` steps of ``FAKE_STEP_S`` seconds each, logs a falling
loss per step (and a validation loss every ``eval_every`` steps) to the store,
and writes a checkpoint folder per step; ``resume=True`` continues after the
newest checkpoint. ``batch_size >= 1000`` raises the out-of-memory error torch
raises, ``learning_rate < 0`` a plain bug.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

STEP_SECONDS = float(os.environ.get("FAKE_STEP_S", "0.05"))


@dataclass
class TrainSettings:
    model: str = ""
    source: str = "wikibooks"
    n_recipes: int = 40
    test_size: float = 0.1
    max_length: int = 128
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    learning_rate: float = 2e-4
    batch_size: int = 4
    epochs: float = 1.0
    max_steps: int = 10
    eval_every: int = 5
    seed: int = 0


def load_modules(reference: bool) -> dict:
    return {"stage2": None, "stage3": None, "stage4a": None, "stage4b": None, "reference": reference}


def run_training(settings: TrainSettings, *, store, run_id, modules, output_dir, resume=False,
                 should_stop=lambda: False, splits=None) -> dict:
    if settings.batch_size >= 1000:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    if settings.learning_rate < 0:
        raise ValueError("learning rate must be positive")
    output_dir = Path(output_dir)
    start = 0
    if resume:
        done = [int(p.name.split("-")[1]) for p in output_dir.glob("checkpoint-*")]
        start = max(done, default=0)
    store.update_run(run_id, summary={"total_steps": settings.max_steps})
    step = start
    for step in range(start + 1, settings.max_steps + 1):
        if should_stop():
            return {"stopped_at": step - 1}
        time.sleep(STEP_SECONDS)
        store.log_metric(run_id, step, "train", loss=3.0 / step, tokens_per_s=1000.0,
                         eta_s=(settings.max_steps - step) * STEP_SECONDS, epoch=step / settings.max_steps)
        if settings.eval_every and step % settings.eval_every == 0:
            store.log_metric(run_id, step, "validation", loss=3.2 / step)
        (output_dir / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
        print(f"step {step}", flush=True)
    return {"final_train_loss": 3.0 / max(step, 1), "resumed_from": start,
            "own_rows": {name: len(part) for name, part in splits.items()} if splits is not None else None}
