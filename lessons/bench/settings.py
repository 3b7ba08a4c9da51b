"""What the bench trains and measures (``BenchSettings``), the ``--quick`` sizes, and how it prints."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BenchSettings:
    """What the benchmark trains and measures; ``--quick`` and the command line set these."""

    n_train: int = field(default=320, metadata={
        "help": "training recipes, the same for both arms (320 = 80 steps of 4); -1 = every training recipe"})
    epochs: int = field(default=1, metadata={
        "help": "whole passes over the training recipes, both arms (the GPU target: --n-train -1 --epochs 3)"})
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


def say(message: str = "") -> None:
    print(message, flush=True)
