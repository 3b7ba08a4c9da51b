"""Stage 6 — Sampling: temperature, top-p, and your own generation loop.

So far ``model.generate`` chose the tokens. Now you write the choosing.

For the next token the model gives one score, a *logit*, to each of the
49,152 tokens. ``softmax`` turns logits into probabilities: ``p_i = e^(l_i) / Σ e^(l_j)``.
Generation is a loop: score, choose one token, append it, score again.

**Greedy** always takes the most probable token. It is repeatable and
often dull, and it loops: once "1 cup of sugar; 1 cup of sugar;" is on the
page, repeating it is the most probable continuation, and greedy has no way
out because it never chooses anything else. **Sampling** draws the token at
random with the model's probabilities, so a likely token usually wins and an
unlikely one sometimes does.

**Temperature** t reshapes the probabilities before drawing: divide every
logit by t. ``softmax(l / t)`` is proportional to ``p^(1/t)``:

    logits [2, 1, 0]   t = 1   → [0.665, 0.245, 0.090]
                       t = 0.5 → [0.867, 0.117, 0.016]   sharper: the favourite wins more often
                       t = 2   → [0.506, 0.307, 0.186]   flatter: outsiders get a chance

As t → 0 it becomes greedy (argmax); as t grows every token becomes equally
likely, and the text becomes word salad. t must be positive: dividing by zero
is not "very sharp", it is undefined, so t = 0 means "use argmax" instead.

**Nucleus (top-p) sampling** cuts the tail. 49,000 tokens that are each
nearly impossible still add up to a real chance of drawing one of them. Sort
the tokens by probability and keep the smallest set whose probabilities add
up to at least p — *including the token that crosses p*:

    probabilities [0.5, 0.3, 0.15, 0.05], p = 0.6
    0.5 < 0.6, so keep going; 0.5 + 0.3 = 0.8 crosses 0.6: keep both, drop the rest
    → renormalised [0.625, 0.375, 0, 0]

The nucleus adapts: when the model is sure, it holds one or two tokens; when
many continuations are fine, it holds many.

**What "creative" means, mathematically**: choosing tokens the model finds
less probable. A higher temperature or a larger p raises the *entropy* of the
distribution you draw from; the text gets more surprising to the model itself.
That is not imagination, it is dice with flatter odds: a little (t ≈ 0.7,
p ≈ 0.9) avoids loops, a lot produces nonsense. The sweep at the end shows it.

Fill in the TODOs top to bottom, then run ``.venv/bin/python -m pytest checks/stage6``
in the project folder.
"""
from __future__ import annotations

import torch

from lessons.engine.constants import END_MARKER
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# Sweeps: a few values that span dull to wild without taking all afternoon.
SWEEP_TEMPERATURES = (0.0, 0.5, 0.8, 1.2, 2.0)  # 0 = greedy; above about 1.5 the text falls apart
SWEEP_TOP_PS = (0.5, 0.9, 1.0)                  # 1.0 = no nucleus: the whole vocabulary may be drawn


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits reshaped by temperature: ``logits / temperature``.

    Works on any shape (the last dimension is the vocabulary) and returns a new
    tensor. ``temperature`` must be > 0, otherwise a ``ValueError`` says so (for
    greedy choosing, take the argmax instead of calling this).

    Example:
        >>> apply_temperature(torch.tensor([2.0, 1.0, 0.0]), 0.5)
        tensor([4., 2., 0.])
    """
    # TODO: Should a low temperature make the gaps between logits bigger or smaller? Which operation does that?
    #       What would dividing by 0 give? Tell the caller clearly instead (raise ValueError).
    raise todo()


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the most probable tokens whose probabilities first reach ``p``; the rest get ``-inf``.

    The kept set is the smallest one, taken from the most probable token down,
    whose total probability is at least ``p``, the token that crosses ``p``
    included. The most probable token is always kept (even for a tiny ``p``),
    and ``p = 1`` keeps every token. ``-inf`` logits become probability 0 after
    softmax. Works on the last dimension of any shape; returns a new tensor.

    Steps: sort descending; softmax; cumulative sum; a token is removed when
    the tokens *before* it already reach ``p`` (cumulative minus its own
    probability ≥ p); scatter the decision back to the original order.

    Example:
        >>> logits = torch.log(torch.tensor([0.15, 0.5, 0.05, 0.3]))
        >>> top_p_filter(logits, 0.6).softmax(-1)
        tensor([0.0000, 0.6250, 0.0000, 0.3750])
    """
    if not 0 <= p <= 1:
        raise ValueError(f"top_p must be between 0 and 1, got {p}")
    # TODO: With p = 1, which tokens belong in the nucleus? Can a float32 cumulative sum reach 1.0 too early?
    #       Walk the example by hand: is the token that takes the sum past p inside the nucleus, or outside?
    #       torch.sort gives the order; tensor.scatter puts a sorted decision back where each token came from.
    raise todo()


def sample_next_token(logits: torch.Tensor, *, temperature: float, top_p: float = 1.0,
                      generator: torch.Generator | None = None) -> int:
    """Choose the next token's id from one row of logits (shape ``(vocab,)``).

    ``temperature == 0`` is greedy: the argmax. Otherwise, in this order (the
    order transformers uses): temperature, then top-p, then softmax, then one
    draw with ``torch.multinomial`` (``generator`` makes the draws repeatable).

    Returns:
        The token id, a plain ``int``.

    Example:
        >>> sample_next_token(torch.tensor([0.1, 3.0, 0.2]), temperature=0)
        1
        >>> sample_next_token(torch.tensor([0.1, 3.0, 0.2]), temperature=1.0, top_p=0.9,
        ...                   generator=torch.Generator().manual_seed(0))
        1
    """
    # TODO: Which of your two functions comes first? Does the nucleus depend on the temperature?
    #       torch.multinomial(probabilities, num_samples=1, generator=generator) draws one index.
    raise todo()


def end_token_id(tokenizer) -> int | None:
    """The id of the ``[END]`` token if stage 3 added it to this tokenizer, else ``None``."""
    return tokenizer.get_vocab().get(END_MARKER)


def decode_new(tokenizer, new_ids: list[int]) -> str:
    """The text of generated ids: end-of-text left out, ``[END]`` kept (even as a special token), nothing after it."""
    eos_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    text = tokenizer.decode([i for i in new_ids if i not in eos_ids], skip_special_tokens=False)
    return text[: text.index(END_MARKER) + len(END_MARKER)] if END_MARKER in text else text


def generate_custom_recipe(model, tokenizer, prompt: str, *, max_new_tokens: int = 120, temperature: float = 0.8,
                           top_p: float = 0.95, seed: int | None = None) -> str:
    """Continue ``prompt`` one token at a time with *your* ``sample_next_token``; return only the new text.

    The loop, at most ``max_new_tokens`` times:

    1. run the model; the scores for the next token are ``outputs.logits[0, -1]``;
    2. choose a token with ``sample_next_token`` (on the CPU, in float32);
    3. stop at the end-of-text token (not added to the text) or at ``[END]``
       (added: the recipe is complete), whether ``[END]`` is one token or the
       text "[", "END", "]";
    4. otherwise feed the new token back in.

    **The KV cache.** Attention looks back at every earlier token. Without a
    cache each step would recompute all of them: step 100 would re-read 100
    tokens. The model returns ``outputs.past_key_values`` (each layer's keys and
    values so far); pass it back with ``past_key_values=`` and feed *only the new
    token*: each step then costs one token's work.

    Args:
        temperature: 0 for greedy, as in ``sample_next_token``.
        seed: seeds a ``torch.Generator`` for the draws: the same seed gives the same text.

    Returns:
        The new text (``decode_new``), ending with "[END]" when the recipe finished.

    Example:
        >>> generate_custom_recipe(model, tokenizer, "RECIPE: Tomato Soup\\nINGREDIENTS:", temperature=0.7, seed=1)
        ' 4 tomatoes; 1 onion; 2 cups stock\\nDIRECTIONS: Chop the onion ... Serve hot.\\n[END]'
    """
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    device = next(model.parameters()).device
    end_id = end_token_id(tokenizer)
    # TODO: The first step reads the whole prompt. What does each later step need to read, with the cache?
    #       Which two ways can a recipe end, and which one belongs in the text?
    #       Measuring, not training: which `with` block saves the memory of gradients?
    raise todo()


def repetition_rate(text: str, n: int = 3) -> float:
    """How much of ``text`` repeats itself: the share of its word n-grams seen before in it (0 = none, → 1 = loops).

    Example:
        >>> repetition_rate("1 cup sugar; 1 cup sugar; 1 cup sugar;")
        0.571...
    """
    words = text.split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def sampling_sweep(model, tokenizer, prompt: str, temperatures=SWEEP_TEMPERATURES, top_ps=SWEEP_TOP_PS, *,
                   max_new_tokens: int = 60, seed: int = 0) -> list[dict]:
    """One generation for every (temperature, top_p) pair, all from the same seed, so only the settings differ.

    Returns:
        A list in the order ``for temperature in temperatures: for top_p in top_ps``,
        each ``{"temperature", "top_p", "text", "repetition"}`` (``repetition_rate`` of the text).

    Example:
        >>> sampling_sweep(model, tokenizer, "RECIPE: Pancakes\\nINGREDIENTS:", [0.0, 1.5], [0.9])
        [{'temperature': 0.0, 'top_p': 0.9, 'text': ' 1 cup flour; 1 cup flour; 1 cup flour; ...', 'repetition': 0.8},
         {'temperature': 1.5, 'top_p': 0.9, 'text': ' 2 eggs, whisked moonlight ...', 'repetition': 0.0}]
    """
    # TODO: Two loops, one generate_custom_recipe call in the middle: which seed for each?
    raise todo()


def next_token_distribution(model, tokenizer, prompt: str, *, temperature: float, top_p: float,
                            k: int = 15) -> list[dict]:
    """Show your work: the k most probable next tokens, before and after temperature and top-p.

    "before" is the model's own probability (softmax of the logits); "after" is
    the probability ``sample_next_token`` would draw it with: temperature, then
    top-p, then softmax (temperature 0: 1.0 for the argmax, 0 for the rest).
    The dashboard draws the two as bars side by side.

    Returns:
        ``k`` dicts, most probable first:
        ``{"id", "text" (the token's text), "before", "after", "kept" (after > 0)}``, probabilities as floats.

    Example:
        >>> prompt = "RECIPE: Pancakes\\nINGREDIENTS:"
        >>> next_token_distribution(model, tokenizer, prompt, temperature=0.5, top_p=0.9, k=3)
        [{'id': 216, 'text': ' ', 'before': 0.41, 'after': 0.83, 'kept': True},
         {'id': 352, 'text': ' 1', 'before': 0.17, 'after': 0.17, 'kept': True},
         {'id': 374, 'text': ' 2', 'before': 0.05, 'after': 0.0, 'kept': False}]
    """
    device = next(model.parameters()).device
    # TODO: One forward pass over the prompt; which position's logits score the *next* token?
    #       Reuse your own functions for "after"; what is "after" when temperature is 0?
    raise todo()
