"""Stage 1 — Concepts: a model, its tokens, and the "before" picture.

You are about to change a language model. Before changing anything, meet it.

A *language model* does one thing: given some text, it gives every possible
next piece of text a probability. "Writing" is just doing that again and
again: pick a likely next piece, append it, ask again. Everything the model
knows about recipes (or anything) lives in its *parameters*: millions of
numbers learned from a huge pile of text during pretraining.

The model we use by default is SmolLM2-135M-Instruct: 135 million parameters,
small enough to train on a laptop. It ships inside this project, so nothing is
downloaded.

*Fine-tuning* will nudge those numbers so that recipe-shaped text becomes more
probable. It does not add rules ("always list ingredients first") or taste;
it shifts probabilities. To see what changes, we first need the "before"
picture: what the model writes for a recipe prompt today.

Pieces of text are *tokens*, not words: common words are one token, rare
words are split into sub-words ("Pancakes" → "ĠPanc" + "akes"; the "Ġ" marks a
space in front). The model only ever sees token ids, numbers like 5678.

Fill in the TODOs and blanks, top to bottom, then run ``.venv/bin/python -m pytest checks/stage1``
in the project folder.
"""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lessons.engine.assets import resolve_model_source
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# Prompts for the "before" picture: the start of a recipe, in the format the
# model will learn in stage 2. The same prompts are used again in stage 5, so
# before and after can be compared side by side.
BEFORE_PROMPTS = [
    "RECIPE: Banana Pancakes\nINGREDIENTS:",
    "RECIPE: Tomato Soup\nINGREDIENTS:",
    "RECIPE: Chocolate Chip Cookies\nINGREDIENTS:",
]


def pick_device() -> str:
    """Where the model's arithmetic runs: ``"cuda"`` (an NVIDIA GPU), ``"mps"`` (an Apple GPU) or ``"cpu"``.

    A GPU does the same maths as the CPU, just thousands of multiplications at
    once. Use the best one this machine has, in that order.

    Example:
        >>> pick_device()          # on a laptop without a GPU
        'cpu'
    """
    # TODO: torch can tell you whether CUDA is available; which function asks?
    #       Apple GPUs are behind torch.backends.mps.
    raise todo()


def load_model_and_tokenizer(name: str | None = None):
    """Load a pretrained causal language model and its tokenizer.

    Args:
        name: ``None`` for the embedded SmolLM2-135M-Instruct (the default), a
            local folder made by ``save_pretrained``, or a Hugging Face id such as
            ``"distilgpt2"`` when this machine's cache has it.

    Returns:
        ``(model, tokenizer)``, the model in evaluation mode (no dropout).

    Two things come in a pair and must match: the *tokenizer* turns text into
    token ids, and the *model* turns token ids into next-token probabilities.
    A *causal* LM predicts each token from the ones before it only — exactly
    what writing left to right needs. ``resolve_model_source`` turns the name
    into a folder (and says clearly what to do when a model is missing).

    Example:
        >>> model, tokenizer = load_model_and_tokenizer()
        >>> type(model).__name__
        'LlamaForCausalLM'
    """
    source = resolve_model_source(name)
    tokenizer = ___.from_pretrained(source)  # TODO: fill in ___ — which Auto class turns text into ids?
    model = ___.from_pretrained(source)  # TODO: fill in ___ — which Auto class predicts the next token?
    model.eval()
    return model, tokenizer


def count_parameters(model) -> dict[str, int]:
    """How many numbers the model has, and how many of them training may change.

    Every parameter is a tensor (``model.parameters()`` gives them all); its
    ``numel()`` is how many numbers it holds, and ``requires_grad`` says whether
    training will change it. Today all are trainable; in stage 4B, LoRA freezes
    almost all of them.

    Example:
        >>> count_parameters(model)
        {'total': 134515008, 'trainable': 134515008}
    """
    # TODO: Loop over model.parameters(); what does p.numel() count?
    #       Which of them have p.requires_grad set?
    raise todo()


def show_tokens(tokenizer, text: str) -> list[dict]:
    """Split ``text`` into tokens and show each one's string and id.

    Returns a list with one dict per token, in order:
    ``{"token": the tokenizer's own string, "id": its number, "text": the text it stands for}``.
    The "text" pieces joined together give back the original text.

    Example:
        >>> show_tokens(tokenizer, "Pancakes rock")
        [{'token': 'Panc', 'id': 45981, 'text': 'Panc'},
         {'token': 'akes', 'id': 1174, 'text': 'akes'},
         {'token': 'Ġrock', 'id': 3610, 'text': ' rock'}]

    (No special tokens are added here: we want to see the text's own tokens.)
    """
    # TODO: tokenizer(text, add_special_tokens=False) gives a dict; which key holds the ids?
    #       tokenizer.convert_ids_to_tokens(ids) gives the token strings; tokenizer.decode([i]) the text of one id.
    raise todo()


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 80, temperature: float = 0.8,
                  top_p: float = 0.95, seed: int | None = None) -> str:
    """Continue ``prompt`` and return only the new text (not the prompt).

    Args:
        max_new_tokens: stop after this many new tokens at most.
        temperature: ``0`` picks the single most probable token each time
            (greedy: the same output every run); higher values pick less likely
            tokens more often (stage 6 explains how).
        top_p: only sample among the most probable tokens whose probabilities
            add up to ``top_p`` (stage 6 again).
        seed: fix the random choices, so the same seed gives the same text.

    Steps: tokenize the prompt into tensors (``return_tensors="pt"``) on the
    model's device, call ``model.generate``, and decode only the tokens after
    the prompt's.

    Example:
        >>> generate_text(model, tokenizer, "RECIPE: Tomato Soup\\nINGREDIENTS:", temperature=0)
        ' 1 can of tomatoes, 1 cup of water, ...'
    """
    # TODO: generate() returns prompt + new tokens in one row; how many of them are the prompt's?
    #       do_sample=False is greedy; sampling needs do_sample=True with temperature and top_p.
    raise todo()
