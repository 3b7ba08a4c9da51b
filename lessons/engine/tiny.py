"""Tiny models with the real tokenizer, for checks and tests that must run in seconds.

A check needs a model that behaves like the real one (same tokenizer, same
architecture, same module names) but trains and generates in milliseconds on a
2-core CPU. These have 2 layers and 64-wide hidden states: about 3.2 M
parameters, nearly all in the 49,152-row embedding of the real vocabulary.
They know nothing; the checks test the learner's code, not the model's wisdom.

Three shapes, each making something visible that the real model would show:

* ``tiny_llama``: SmolLM2's architecture (``q_proj``/``v_proj``, a pad token,
  tied embeddings). With ``dropout=`` > 0 training and evaluation mode give
  different outputs, so a step that forgets ``model.train()`` shows.
* ``lively_llama``: the same, with its own output head and peaked scores, so
  its next token depends on the context and sampling settings show.
* ``tiny_gpt2``: GPT-2's architecture (``c_attn``, ``c_fc``, ``transformer.h``,
  ``n_embd`` instead of ``hidden_size``, no pad token in its config, dropout
  on by default), so code written for one architecture only shows.
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


def tiny_llama(tokenizer=None, *, seed: int = 0, layers: int = 2, hidden: int = 64, dropout: float = 0.0):
    """A Llama-architecture model like SmolLM2, shrunk: small for check speed.

    ``dropout``: attention dropout while training (SmolLM2 has 0.0). Give it 0.1
    to make training mode visible: then ``model.train()`` changes the loss.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or real_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True, attention_dropout=dropout,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def lively_llama(tokenizer=None, *, seed: int = 0, layers: int = 2, hidden: int = 64):
    """A random tiny Llama (small for check speed) whose next token depends on the context.

    ``tiny_llama`` shares its input and output embeddings, so untrained it mostly
    repeats the last token, with nearly flat probabilities; this one has its own
    output head, and logits ×3, so its distribution is peaked like a real
    model's (top token ≈ 0.24): temperature and top-p change what it writes.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or real_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=False, initializer_range=0.2,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(3)
    return model


def tiny_gpt2(tokenizer=None, *, seed: int = 0, layers: int = 2, hidden: int = 64):
    """A GPT-2-architecture model (``c_attn``, ``c_proj``, ``c_fc``), shrunk: small for check speed.

    Its config is GPT-2's: ``n_embd``/``n_layer`` instead of ``hidden_size``/``num_hidden_layers``,
    no ``pad_token_id``, and GPT-2's dropout of 0.1 (so training mode shows here too).
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    # No GPT-2 tokenizer is available offline: SmolLM2's real one stands in (real words, GPT-2's layout).
    tokenizer = tokenizer or real_tokenizer()
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=4, n_positions=1024,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config).eval()
