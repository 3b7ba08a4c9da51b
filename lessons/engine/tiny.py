"""Tiny models with the real tokenizer, for checks and tests that must run in seconds.

A check needs a model that behaves like the real one (same tokenizer, same
architecture, same module names) but trains and generates in milliseconds on a
2-core CPU. These have 2 layers and 64-wide hidden states: about 3.2 M
parameters, nearly all in the 49,152-row embedding of the real vocabulary.
They know nothing; the checks test the learner's code, not the model's wisdom.
"""
from __future__ import annotations

import copy
from functools import lru_cache

from .assets import ensure_model_cache


@lru_cache(maxsize=1)
def _cached_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(ensure_model_cache()))


def real_tokenizer():
    """A fresh copy of the embedded model's tokenizer (checks may add tokens to it)."""
    return copy.deepcopy(_cached_tokenizer())


def tiny_llama(tokenizer=None, *, seed: int = 0, layers: int = 2, hidden: int = 64):
    """A Llama-architecture model like SmolLM2, shrunk: small for check speed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or real_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(tokenizer=None, *, seed: int = 0, layers: int = 2, hidden: int = 64):
    """A GPT-2-architecture model (``c_attn``, ``c_proj``, ``c_fc``), shrunk: small for check speed."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tokenizer or real_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=4, n_positions=1024,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).eval()
