"""Model folders for the chat's tests: a tiny base model, and a LoRA adapter on it saved as a finished run saves one.

Tiny (lessons/engine/tiny.py: 2 layers, 64 wide, SmolLM2's real tokenizer) so that loading and answering take
milliseconds; the chat treats them exactly as it treats SmolLM2 and a real run's adapter.
"""
from __future__ import annotations

from pathlib import Path

from lessons.engine.constants import END_MARKER
from lessons.engine.store import Store
from lessons.engine.tiny import lively_llama, real_tokenizer


def tiny_base(folder: Path) -> Path:
    """A tiny Llama whose answer depends on its prompt (``lively_llama``), saved with the real tokenizer."""
    tokenizer = real_tokenizer()
    lively_llama(tokenizer, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_adapter(folder: Path, base: Path) -> Path:
    """A LoRA adapter (q_proj, v_proj) on the tiny base, its tokenizer with ``[END]`` beside it, as stage 4B saves."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    model.resize_token_embeddings(len(tokenizer))
    adapted = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                               task_type="CAUSAL_LM"))
    adapted.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def finished_run(store: Store, adapter: Path, *, run_id: str = "chat-run") -> str:
    """A finished training run in ``store`` whose summary names ``adapter``: what the Chat page lists."""
    store.start_run("train", {"model": None}, name="tiny", run_id=run_id)
    store.update_run(run_id, status="finished", summary={"adapter_dir": str(adapter)})
    return run_id
