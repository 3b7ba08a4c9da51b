"""Library notices a learner can do nothing about, silenced one exact message at a time.

The lab's own processes (the training job, the pipeline, the bench, the
dashboard's worker) call ``quiet_library_notices()`` once at start;
``pytest.ini`` ignores the same warnings for the checks and the tests. Never a
whole category: a warning about the learner's own code, or a new one from a
library, still shows.
"""
from __future__ import annotations

import logging
import warnings

# (message regex, category, the module that warns)
WARNINGS = [
    # peft 0.21's get_peft_model reads transformers' deprecated is_gradient_checkpointing: for peft to change.
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils"),
    # The Trainer's checkpoints save with peft's "auto", which keeps the resized embedding table so a run can
    # resume; the finished adapter is saved with save_embedding_layers=False (stage 4B's save_adapter).
    (r"Setting `save_embedding_layers` to `True` as the embedding layer has been resized during finetuning",
     UserWarning, r"peft\.utils\.save_and_load"),
]
# Logged (not warned) by transformers at stage 3's resize_token_embeddings; the stage 3 lesson explains it.
MEAN_RESIZING_NOTE = "The new embeddings will be initialized from a multivariate normal distribution"


def _not_the_mean_resizing_note(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(MEAN_RESIZING_NOTE)


def quiet_library_notices() -> None:
    """Ignore exactly the notices in ``WARNINGS`` and the mean-resizing note, nothing else."""
    for message, category, module in WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    logger = logging.getLogger("transformers.modeling_utils")
    if _not_the_mean_resizing_note not in logger.filters:
        logger.addFilter(_not_the_mean_resizing_note)
