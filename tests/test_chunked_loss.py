"""The loss computed a slice at a time (``lessons/engine/chunked_loss.py``) is the loss transformers computes.

What a learner would notice if it were wrong: a different training loss, other gradients (a model
that learns something else), a broken evaluation or generation. Each test compares against the
model's own forward on the *tiny* Llama and GPT-2 of ``lessons/engine/tiny.py`` (2 layers, 64 wide,
the real 49,152-token vocabulary plus ``[END]``): the vocabulary, where the slicing happens, is
real size, and a step takes milliseconds. Slices of 5 tokens make every batch cross several of them.
"""
from __future__ import annotations

import pytest
import torch

from lessons.engine.chunked_loss import ChunkedLoss, linear_cross_entropy
from lessons.engine.tiny import real_tokenizer, tiny_gpt2, tiny_llama
from lessons.engine.speed import FrozenInBf16, speed_up_trainable_tokens

CHUNK = 5


@pytest.fixture(scope="module")
def tokenizer():
    tok = real_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["[END]"]})
    return tok


def lora_model(tokenizer, make, targets, embeddings):
    """A tiny model with LoRA and [END]'s row trained, as the lab trains; LoRA B not zero, so every gradient flows."""
    from peft import LoraConfig, TaskType, get_peft_model

    speed_up_trainable_tokens()
    base = make(tokenizer)
    base.resize_token_embeddings(len(tokenizer))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type=TaskType.CAUSAL_LM,
                        init_lora_weights=False,
                        trainable_token_indices={embeddings: [tokenizer.convert_tokens_to_ids("[END]")]})
    return get_peft_model(base, config).eval()  # eval: GPT-2's dropout off, so two passes can be compared


def batch(tokenizer):
    torch.manual_seed(0)
    ids = torch.randint(0, len(tokenizer), (3, 17))
    ids[:, 6] = tokenizer.convert_tokens_to_ids("[END]")  # the trained row is used as input and as a target
    labels = ids.clone()
    labels[2, 11:] = -100                                  # padding of a shorter recipe
    return {"input_ids": ids, "labels": labels}


def agree(found, expected, share: float) -> bool:
    """Equal to within ``share`` of the largest entry (float sums taken in another order differ in the last bits)."""
    return bool((found - expected).abs().max() <= share * expected.abs().max())


def loss_and_gradients(model, inputs, *, chunked: bool, bf16: bool = False, **kwargs):
    model.zero_grad(set_to_none=True)
    with FrozenInBf16(model, enabled=bf16), ChunkedLoss(model, enabled=chunked) as context, \
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        assert context.active == chunked
        output = model(**inputs, **kwargs)
        output.loss.backward()
    return output, {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("make, targets, embeddings", [(tiny_llama, ["q_proj", "v_proj"], "embed_tokens"),
                                                       (tiny_gpt2, ["c_attn"], "wte")])
def test_loss_and_gradients_equal_the_models_own(tokenizer, make, targets, embeddings, monkeypatch):
    monkeypatch.setattr("lessons.engine.chunked_loss.chunk_tokens", lambda vocab_size, device_type="cpu": CHUNK)
    model = lora_model(tokenizer, make, targets, embeddings)
    inputs = batch(tokenizer)
    for extra in ({}, {"num_items_in_batch": torch.tensor(40)}):  # the mean, and the Trainer's divisor
        own, own_grads = loss_and_gradients(model, inputs, chunked=False, **extra)
        sliced, sliced_grads = loss_and_gradients(model, inputs, chunked=True, **extra)
        assert sliced.logits is None, "the point is never to build the vocabulary-wide logits"
        assert sliced.loss.item() == pytest.approx(own.loss.item(), rel=1e-6)
        assert any("trainable_tokens" in name for name in own_grads)  # [END]'s row is among the compared
        for name, gradient in own_grads.items():
            assert agree(sliced_grads[name], gradient, 1e-5), name
    assert "forward" not in vars(model.get_base_model()), "on exit the model's own forward is back"


def test_under_bf16_autocast_the_numbers_agree_to_bf16_rounding(tokenizer):
    model = lora_model(tokenizer, tiny_llama, ["q_proj", "v_proj"], "embed_tokens")
    inputs = batch(tokenizer)
    own, own_grads = loss_and_gradients(model, inputs, chunked=False, bf16=True)
    sliced, sliced_grads = loss_and_gradients(model, inputs, chunked=True, bf16=True)
    assert sliced.loss.item() == pytest.approx(own.loss.item(), rel=1e-3)
    for name, gradient in own_grads.items():  # bfloat16 keeps 8 bits: agreement to about 1 %
        assert agree(sliced_grads[name], gradient, 0.02), name


def test_evaluation_and_generation_still_work_while_it_is_on(tokenizer):
    model = lora_model(tokenizer, tiny_llama, ["q_proj", "v_proj"], "embed_tokens")
    inputs = batch(tokenizer)
    with torch.no_grad():
        expected = model(**inputs).loss
        with ChunkedLoss(model) as context:
            assert context.active
            assert model(**inputs).loss.item() == pytest.approx(expected.item(), rel=1e-6)  # validation
            logits = model(input_ids=inputs["input_ids"]).logits                      # no labels: own forward
            generated = model.generate(input_ids=inputs["input_ids"][:1, :4], max_new_tokens=3, do_sample=False)
    assert logits.shape == (3, 17, len(tokenizer)) and generated.shape == (1, 7)


def test_a_model_it_does_not_know_keeps_its_own_loss(tokenizer):
    model = tiny_llama(tokenizer)
    model.lm_head.weight.requires_grad_(True)  # an output layer that trains: the slices do not compute its gradient
    with ChunkedLoss(model) as context:
        assert not context.active
    model.config.model_type = "gemma2"        # soft-capped logits: a different loss
    model.lm_head.weight.requires_grad_(False)
    with ChunkedLoss(model) as context:
        assert not context.active


def test_the_function_alone_matches_cross_entropy():
    torch.manual_seed(0)
    hidden = torch.randn(23, 8, requires_grad=True)
    weight = torch.randn(31, 8)
    rows, rows_weight = torch.tensor([30]), torch.randn(1, 8, requires_grad=True)
    labels = torch.randint(0, 31, (23,))
    labels[[2, 9]] = -100
    labels[4] = 30
    full = torch.cat([weight[:30], rows_weight])
    expected = torch.nn.functional.cross_entropy(hidden @ full.T, labels)
    expected.backward()
    expected_grads = hidden.grad.clone(), rows_weight.grad.clone()
    hidden.grad = rows_weight.grad = None
    loss = linear_cross_entropy(hidden, weight, labels, rows=rows, rows_weight=rows_weight, chunk=4)
    (2 * loss).backward()  # the gradient arriving from above scales what was computed in the forward pass
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.allclose(hidden.grad, 2 * expected_grads[0], atol=1e-6)
    assert torch.allclose(rows_weight.grad, 2 * expected_grads[1], atol=1e-6)
