"""Full fine-tuning, LoRA and QLoRA through the same training run, and the figures each ends with.

Every run trains a *tiny* Llama (2 layers, 64 wide, the real tokenizer; ``lessons/engine/tiny.py``) for 2 steps
on 8 fixture recipes: what is tested is that each method trains what it should, saves what it should and
measures the same things, which is the same at any size; SmolLM2 would take minutes per method here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from lessons.engine import methods
from lessons.engine.modules import load_stage_module
from lessons.engine.store import Store
from lessons.engine.tiny import real_tokenizer, tiny_llama
from lessons.engine.training import TrainSettings, run_training
from tests.test_training import fixture_splits, tiny_settings

STAGES = ("stage2", "stage3", "stage4a", "stage4b")


@pytest.fixture(scope="module")
def modules():
    return {key: load_stage_module(key, reference=True) for key in STAGES}


def train(tmp_path, modules, method: str) -> dict:
    tokenizer = real_tokenizer()
    with Store(tmp_path / f"{method}.sqlite", learner="tests") as store:
        summary = run_training(tiny_settings(method=method, max_steps=2, eval_every=2, stop_rate_prompts=2,
                                             max_length=48),
                               store=store, run_id=method, modules=modules, output_dir=tmp_path / method,
                               model=tiny_llama(tokenizer, seed=0), tokenizer=tokenizer, splits=fixture_splits())
        assert store.run(method)["status"] == "finished"
        assert store.run(method)["summary"]["heldout_perplexity"] == summary["heldout_perplexity"]
    return summary


def test_a_wrong_method_is_refused_in_words():
    with pytest.raises(ValueError, match="Unknown fine-tuning method 'qlora4'.*'lora'.*'full'.*'qlora'"):
        TrainSettings(method="qlora4")


@pytest.fixture(scope="module")
def lora_and_full(tmp_path_factory, modules):
    folder = tmp_path_factory.mktemp("methods")
    return train(folder, modules, "lora"), train(folder, modules, "full")


def test_full_trains_every_weight_and_lora_few(lora_and_full):
    lora, full = lora_and_full
    assert full["trainable"]["trainable"] == full["trainable"]["total"]
    assert 0 < lora["trainable"]["trainable"] < 0.05 * lora["trainable"]["total"]
    assert full["learning_rate"] == methods.FULL_LEARNING_RATE and lora["learning_rate"] == 5e-3


def test_every_method_ends_with_the_same_measurements(lora_and_full):
    for summary in lora_and_full:
        assert summary["heldout_perplexity"] > 1 and summary["heldout_tokens"] > 0
        assert 0.0 <= summary["stop_rate"] <= 1.0 and summary["stop_prompts"] == 2
        assert summary["peak_memory_mb"] >= 0 and summary["memory_kind"]
        assert summary["tokens_per_s"] > 0 and summary["saved_bytes"] > 0


def test_the_adapter_is_a_small_part_of_the_whole_model_saved(lora_and_full):
    lora, full = lora_and_full
    assert lora["adapter_dir"] and not lora.get("model_dir")
    assert full["model_dir"] and full["adapter_dir"] is None  # stage 5 never mistakes it for an adapter
    assert (Path(full["model_dir"]) / "model.safetensors").exists()
    assert lora["saved_bytes"] * 10 < full["saved_bytes"]


@pytest.mark.skipif(methods.qlora_unsupported_reason() is not None, reason="bitsandbytes 4-bit not available")
def test_qlora_trains_lora_on_4bit_layers_and_its_footprint_is_smaller(tmp_path, modules):
    import bitsandbytes as bnb

    summary = train(tmp_path, modules, "qlora")
    assert summary["footprint_4bit_bytes"] < summary["footprint_float32_bytes"]
    assert 0 < summary["trainable"]["trainable"] < summary["trainable"]["total"]
    weights = sum(parameter.numel() for parameter in tiny_llama(real_tokenizer()).parameters())
    assert summary["trainable"]["total"] > weights  # 4-bit weights counted whole, not as packed bytes
    assert summary["adapter_dir"] and summary["heldout_perplexity"] > 1
    four_bit = [name for name, layer in summary["model"].named_modules() if isinstance(layer, bnb.nn.Linear4bit)]
    assert any(name.endswith("q_proj.base_layer") for name in four_bit)


def test_qlora_refuses_in_words_where_bitsandbytes_cannot(monkeypatch):
    monkeypatch.setattr(methods, "qlora_unsupported_reason", lambda: "bitsandbytes cannot be imported here.")
    with pytest.raises(RuntimeError, match="QLoRA is not possible on this machine: bitsandbytes cannot be imported"):
        methods.load_4bit("/nowhere")
