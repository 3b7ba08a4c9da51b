"""The eight stages: one registry the checks, the command line and the dashboard share."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .paths import CHECKS_DIR, LESSONS_DIR, REFERENCE_DIR


@dataclass(frozen=True)
class Stage:
    key: str = ""      # folder under checks/, e.g. "stage4a"
    label: str = ""    # how the lesson names it, e.g. "4A"
    module: str = ""   # lesson module, e.g. "stage4a_one_step"
    title: str = ""    # one line for tables and pages

    @property
    def learner_file(self) -> Path:
        return LESSONS_DIR / f"{self.module}.py"

    @property
    def reference_file(self) -> Path:
        return REFERENCE_DIR / f"{self.module}.py"

    @property
    def checks_dir(self) -> Path:
        return CHECKS_DIR / self.key

    @property
    def check_command(self) -> str:
        """The command a learner types in the project folder, from a fresh shell (no venv activated)."""
        return f".venv/bin/python -m pytest checks/{self.key}"


STAGES: list[Stage] = [
    Stage("stage1", "1", "stage1_concepts", "Concepts: a model, its tokens, the 'before' picture"),
    Stage("stage2", "2", "stage2_data", "The data mess: load, format, filter, split"),
    Stage("stage3", "3", "stage3_tokenize", "Tokenizing: padding, truncation, [END]"),
    Stage("stage4a", "4A", "stage4a_one_step", "One training step: loss and gradients"),
    Stage("stage4b", "4B", "stage4b_lora", "LoRA training"),
    Stage("stage5", "5", "stage5_evaluate", "Evaluation: perplexity, before and after"),
    Stage("stage6", "6", "stage6_sampling", "Sampling: temperature and top-p"),
    Stage("stage7", "7", "stage7_own_dataset", "Your own dataset"),
]
STAGES_BY_KEY = {stage.key: stage for stage in STAGES}


def stage(key: str) -> Stage:
    """``stage("stage3")`` or ``stage("3")`` or ``stage("4a")``."""
    key = key.lower()
    key = key if key.startswith("stage") else f"stage{key}"
    if key not in STAGES_BY_KEY:
        raise KeyError(f"no stage {key!r}: choose one of {', '.join(STAGES_BY_KEY)}")
    return STAGES_BY_KEY[key]


def content_hash(data: bytes) -> str:
    """A short fingerprint of a file's bytes: the checks hash what they imported, the dashboard what is on disk."""
    return hashlib.sha256(data).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """A short fingerprint of a learner file, to know whether it changed since its checks ran."""
    return content_hash(Path(path).read_bytes()) if Path(path).exists() else ""
