"""A finished training run's model and tokenizer, loaded the one way every caller uses (engine code, never the learner's).

A run saves its LoRA adapter and, beside it, the tokenizer it trained with (stage 3
added ``[END]``). Loading it back: the tokenizer from the adapter's folder, the base
model with its embeddings resized to that tokenizer, then the adapter on top.

The adapter also holds the trained ``[END]`` row (peft's trainable tokens), which peft
computes by rebuilding the whole embedding matrix at every generated token, about doubling
the time per token on a CPU (docs/benchmarks.md, "Beyond perplexity").
``speed.speed_up_trainable_tokens`` computes the same numbers without the rebuild, and is
switched on before an adapter is loaded.
"""
from __future__ import annotations

from pathlib import Path

from .assets import resolve_model_source
from .constants import END_MARKER
from .speed import speed_up_trainable_tokens

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def run_tokenizer(adapter: str | Path, model: str | None = None):
    """The tokenizer a run trained with: from its adapter folder, else the base model's with ``[END]`` added."""
    from transformers import AutoTokenizer

    folder = Path(adapter)
    saved = any((folder / name).exists() for name in TOKENIZER_FILES)
    tokenizer = AutoTokenizer.from_pretrained(str(folder) if saved else resolve_model_source(model))
    if END_MARKER not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    return tokenizer


def base_for(tokenizer, model: str | None = None):
    """The base model, in evaluation mode, with one embedding row per token of ``tokenizer``."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve_model_source(model)).eval()
    if base.get_input_embeddings().weight.shape[0] != len(tokenizer):
        base.resize_token_embeddings(len(tokenizer))  # one row per token id the adapter was trained with
    return base


def load_trained_model(adapter: str | Path, model: str | None = None):
    """(fine-tuned model, tokenizer) of a finished run: ``base_for`` its tokenizer, the adapter on top, eval mode."""
    from peft import PeftModel

    speed_up_trainable_tokens()  # the same numbers; without it every token rebuilds the embedding matrix
    tokenizer = run_tokenizer(adapter, model)
    return PeftModel.from_pretrained(base_for(tokenizer, model), str(adapter)).eval(), tokenizer
