"""A tiny Llama that writes a text we choose: for checks of stopping and probing.

A random tiny model never writes ``[END]`` or "INGREDIENTS:", and training one
to do so would take far longer than a check may. So these models are *set by
hand*: one layer whose attention and MLP add nothing (their output weights are
zero), so the last hidden state is the current token's embedding; and an
embedding and output head that map chosen tokens to chosen next tokens — a
bigram table written into real weights. The next token depends only on the
current one, with probability ≈ 1 (a logit of 48 against 0 for every other
token), so greedy and sampled generation agree. It is a real
``LlamaForCausalLM``: ``generate``, the KV cache, ``labels`` and peft all work
as on the real model. Tokens not in the table get all-zero logits: every next
token equally likely.
"""
from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HIDDEN = 64          # one dimension per scripted token: room for 64 of them, small for check speed
STRENGTH = 6.0       # × the normalised embedding (8 = √64) → logit 48: probability 1 - 49,152·e⁻⁴⁸ ≈ 1


def scripted_llama(tokenizer, next_token: dict[int, int]) -> LlamaForCausalLM:
    """A model whose next token after ``token`` is ``next_token[token]`` (any context before it is ignored)."""
    if len(next_token) > HIDDEN:
        raise ValueError(f"at most {HIDDEN} scripted tokens, got {len(next_token)}")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=HIDDEN,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:  # the layer adds nothing: the residual stream is the embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.lm_head.weight.zero_()
        for dimension, (token, following) in enumerate(next_token.items()):
            model.model.embed_tokens.weight[token, dimension] = 1.0
            model.lm_head.weight[following, dimension] = STRENGTH
    return model


def chain(tokenizer, starts: list[int], *pieces: str | int) -> dict[int, int]:
    """The table that makes a model continue any of ``starts`` with ``pieces`` (texts, or token ids), in order.

    Every token of the chain must be different (the model only sees the current token).
    """
    tokens: list[int] = []
    for piece in pieces:
        tokens += [piece] if isinstance(piece, int) else tokenizer(piece, add_special_tokens=False)["input_ids"]
    if len(set(tokens)) != len(tokens) or set(tokens) & set(starts):
        raise ValueError(f"a scripted chain needs distinct tokens: {tokenizer.convert_ids_to_tokens(tokens)}")
    table = {start: tokens[0] for start in starts}
    table.update(zip(tokens, tokens[1:]))
    return table


def last_token(tokenizer, text: str) -> int:
    """The id of the last token of ``text`` as the tokenizer splits it."""
    return tokenizer(text, add_special_tokens=False)["input_ids"][-1]
