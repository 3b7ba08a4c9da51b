"""A tiny trainer for the queue's tests and ``python -m lessons bench-queue``: the shape of
``lessons.engine.training`` (``TrainSettings``, ``load_modules``, ``run_training``), a 5-parameter model.

``LAB_JOBS_TRAINER=lessons.bench.tiny_trainer`` makes every job train this instead of a language
model, so thirty jobs pass through the queue in seconds and what is measured is the queue. It fits
``y = 2·x₁ − x₂ + 0.5·x₃ + 3·x₄ + 1`` by gradient descent in plain Python (importing torch would
cost each job seconds on two cores, and hide the queue's own cost), logs the loss every
``log_every`` steps to the store, and records in its summary when it started and ended, so a test
can count how many jobs ran at once.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass


@dataclass
class TrainSettings:
    steps: int = 20         # optimizer steps
    log_every: int = 5      # a metric row every this many steps
    step_s: float = 0.0     # extra seconds per step, standing in for a real model's step (a run to cancel midway)
    batch_size: int = 16    # rows per step
    learning_rate: float = 0.05
    seed: int = 0


def load_modules(reference: bool) -> dict:
    return {}  # no lesson code: the queue is what is exercised


def run_training(settings: TrainSettings, *, store, run_id, modules, output_dir, resume=False,
                 should_stop=lambda: False, splits=None) -> dict:
    started = time.time()
    rng = random.Random(settings.seed)
    truth, weights = [2.0, -1.0, 0.5, 3.0, 1.0], [0.0] * 5  # the last weight is the bias
    store.update_run(run_id, summary={"total_steps": settings.steps})
    step = 0
    for step in range(1, settings.steps + 1):
        if should_stop():
            step -= 1
            break
        rows = [[rng.gauss(0, 1) for _ in range(4)] + [1.0] for _ in range(settings.batch_size)]
        errors = [sum(w * x for w, x in zip(weights, row)) - sum(t * x for t, x in zip(truth, row)) for row in rows]
        loss = sum(error * error for error in errors) / len(rows)
        for i in range(5):
            weights[i] -= settings.learning_rate * 2 * sum(e * row[i] for e, row in zip(errors, rows)) / len(rows)
        if step % settings.log_every == 0 or step == settings.steps:
            store.log_metric(run_id, step, "train", loss=loss)
        if settings.step_s:
            time.sleep(settings.step_s)
    return {"steps": step, "total_steps": settings.steps, "started": started, "ended": time.time()}
