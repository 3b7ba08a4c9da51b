"""The bench's count of training arithmetic (``lessons/engine/flops.py``) against PyTorch's own FLOP counter.

If the count were wrong, the bench would report a wrong share of the GPU's peak. ``FlopCounterMode``
counts every matrix product a forward and backward pass really run; the tiny Llama (2 layers, 64 wide,
the real vocabulary) makes that pass take milliseconds. Eager attention computes the whole square of
scores, so the counter's attention is the full square where the model FLOPs count only the causal half.
"""
from __future__ import annotations

import pytest
import torch

from lessons.engine.flops import matrix_parameters, peak_flops, training_flops
from lessons.engine.tiny import real_tokenizer, tiny_llama


@pytest.fixture(scope="module")
def lora_model():
    from peft import LoraConfig, TaskType, get_peft_model

    model = tiny_llama(real_tokenizer())
    model.set_attn_implementation("eager")
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, config).train()


def test_matrix_parameters_count_each_matrix_once(lora_model):
    config = lora_model.config
    hidden, inner, kv = config.hidden_size, config.intermediate_size, config.num_key_value_heads * config.head_dim
    per_layer = 2 * hidden * hidden + 2 * hidden * kv + 3 * hidden * inner   # q, o; k, v; gate, up, down
    output_layer = config.vocab_size * hidden                                 # tied to the embeddings: counted once
    rank = 4
    lora = rank * hidden + hidden * rank + rank * hidden + kv * rank          # q: A, B; v: A, B (v is kv wide)
    assert matrix_parameters(lora_model) == {"frozen": config.num_hidden_layers * per_layer + output_layer,
                                             "trained": config.num_hidden_layers * lora}


def counted_flops(model, length: int) -> int:
    """What PyTorch counts for one forward and backward pass over one text of ``length`` tokens."""
    from torch.utils.flop_counter import FlopCounterMode

    ids = torch.randint(0, 1000, (1, length), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("length", [8, 64])
def test_training_flops_match_what_pytorch_counts(lora_model, length):
    config = lora_model.config
    per_position = 12 * config.num_hidden_layers * config.num_attention_heads * config.head_dim
    causal_half = per_position * length * (length + 1) / 2
    whole_square = per_position * length * length
    expected = training_flops(lora_model, [length]) - causal_half + whole_square
    # within 1 %: the first layer passes no gradient on to the (frozen) embeddings, which the count ignores
    assert counted_flops(lora_model, length) == pytest.approx(expected, rel=0.01)


def test_attention_grows_with_the_square_of_the_length(lora_model):
    # Twice the length: what grows faster than the length is attention alone. Eager attention computes the
    # whole square of scores; the model FLOPs count the causal half (plus the diagonal). Of attention's 12
    # units per layer, the first layer skips 2 (the keys' gradient: nothing below it trains).
    short, long = 32, 64
    counted = counted_flops(lora_model, long) - 2 * counted_flops(lora_model, short)
    modelled = training_flops(lora_model, [long]) - 2 * training_flops(lora_model, [short])
    first_layer_skips = 1 - 2 / (12 * lora_model.config.num_hidden_layers)
    assert counted == pytest.approx(2 * modelled * first_layer_skips, rel=0.01)


def test_peak_comes_from_the_table_or_the_environment(monkeypatch):
    monkeypatch.delenv("LAB_PEAK_TFLOPS", raising=False)
    assert peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert peak_flops("NVIDIA H100 PCIe") == pytest.approx(756.5e12)
    assert peak_flops("NVIDIA H100 NVL") is None and peak_flops("cpu") is None
    monkeypatch.setenv("LAB_PEAK_TFLOPS", "100")
    assert peak_flops("cpu") == pytest.approx(100e12)
