"""Stage 5 — Evaluation: did fine-tuning help, and what exactly changed?

Training printed a falling loss. Now measure the model on recipes it has never
seen (the validation split) and look at what it writes, before and after.

**Perplexity** is the standard number. For each token of a held-out recipe the
model gave the true next token some probability p; the loss for that token is
``-ln p``. Average the loss over every real token, then undo the logarithm:

    perplexity = exp(mean loss)

Read it as *how many tokens the model is choosing between*. A model that
spreads its probability evenly over k tokens gives each true token p = 1/k, a
loss of ln k, and a perplexity of exactly k. Perplexity 1 would be a model that
is always certain and always right; perplexity 49,152 (the vocabulary's size)
a model that knows nothing at all. On our recipes, a short LoRA run takes
SmolLM2 from choosing between about 18 tokens to about 12. (Part of the
"before" is the brand-new ``[END]`` token: the base model has never learned
it, so every ``[END]`` surprises it far more than an ordinary word does.)

Three ways to get the number wrong, each one a real beginner's mistake:

* **Counting padding.** Short recipes are padded to the batch's length with
  the pad token (here the end-of-text token). Padding is not text: predicting
  "more padding after padding" is trivially easy, and the amount of padding
  depends on the batch, not on the model. Count only real tokens — the
  ``attention_mask`` says which they are — and give padding the label ``-100``,
  the value PyTorch's loss functions skip.
* **exp of the summed loss.** The sum grows with the number of tokens: e^(2.5 ×
  20,000) is not a perplexity (and overflows a float). Perplexity is exp of the
  *mean*.
* **Averaging batch averages.** A batch of short recipes has fewer tokens than
  a batch of long ones; a mean of per-batch means over-weights the short
  batch. Add up loss and tokens over all batches, then divide once.

Perplexities are comparable only on the *same* data with the *same*
tokenizer: a tokenizer that cuts text into more, smaller tokens makes each
token easier to guess and the number lower without any better model.

**What fine-tuning changes, and what it does not.** LoRA nudged probabilities:
"INGREDIENTS:" after a title, "[END]" after the directions, kitchen words
everywhere. It added no rules (the model may still forget a section or never
stop), no facts (quantities can be nonsense) and no taste. And perplexity does
not see any of that: a model can score well and still ramble past the end,
copy training recipes word for word, or answer a programming question with a
soup. Hence the other measures here: format adherence, stop rate,
memorisation of training titles, and an off-topic probe.

Fill in the TODOs top to bottom, then run ``.venv/bin/python -m pytest checks/stage5``
in the project folder.
"""
from __future__ import annotations

import copy
import difflib
import math
import re

import torch
import torch.nn.functional as F
from peft import PeftModel

from lessons.engine.constants import END_MARKER
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

# The label PyTorch's cross-entropy skips (its ``ignore_index`` default), and the
# one transformers' data collators give padding: a token with it counts for nothing.
IGNORE_INDEX = -100
# The section labels of a formatted recipe, in the order stage 2 writes them.
RECIPE_LABELS = ("RECIPE:", "INGREDIENTS:", "DIRECTIONS:")
# Two titles at least this similar (difflib's ratio, 0..1, after lower-casing and
# dropping punctuation) count as a near-copy: "Banana Bread!" vs "banana bread"
# is 1.0, a one-letter change in a 12-letter title about 0.92, a different dish far lower.
NEAR_COPY_SIMILARITY = 0.9
# A question with no recipe in it: a model that answers it with INGREDIENTS has
# learned "every text is followed by a recipe", not "recipes look like this".
OFF_TOPIC_QUESTION = "How do I reverse a list in Python?"


def load_finetuned(base, adapter_path):
    """The base model with a saved LoRA adapter on top, ready to evaluate.

    ``save_adapter`` (stage 4B) wrote only the small LoRA matrices, a few MB;
    this puts them back on a base model, which must be the same model (with the
    same tokenizer set-up from stage 3) that was trained.

    peft *changes the model it wraps*: it swaps its attention layers for LoRA
    layers in place. So wrap a copy, and ``base`` stays the base model — which
    the side-by-side comparison below needs (and the dashboard keeps one base
    model in memory for every page).

    Returns:
        A ``PeftModel`` in evaluation mode (no dropout).

    Example:
        >>> finetuned = load_finetuned(base, ".lab/runs/run-1/adapter")
        >>> type(finetuned).__name__, finetuned.training
        ('PeftModel', False)
    """
    base_copy = copy.deepcopy(base)  # peft edits what it wraps; keep the caller's base model untouched
    finetuned = ___.from_pretrained(base_copy, str(adapter_path))  # TODO: fill in ___ — which peft class puts a saved adapter on a base model?
    finetuned.eval()  # dropout off: we measure, we do not train
    return finetuned


def perplexity(model, tokenized_eval, *, batch_size: int = 8) -> float:
    """exp(mean loss over the real tokens of ``tokenized_eval``): how many tokens the model is choosing between.

    Args:
        model: a causal language model (the base or a fine-tuned one).
        tokenized_eval: rows with ``input_ids`` and ``attention_mask`` (stage 3's
            output: a ``datasets.Dataset``; slicing it gives a dict of lists).
        batch_size: rows per forward pass (default 8); the answer must not depend on it.

    Steps, for each batch:

    1. tensors of ``input_ids`` and ``attention_mask`` (rows of different lengths
       are padded for you by ``_batch_tensors``);
    2. labels: the input ids, with ``IGNORE_INDEX`` wherever ``attention_mask`` is 0;
    3. the model's logits (no gradients: this is measuring, not training);
    4. position t predicts token t + 1: compare ``logits[:, :-1]`` with ``labels[:, 1:]``;
       add up the loss of every real token (``reduction="sum"``) and count them.

    Then divide the total loss by the total count *once*, and take ``exp``
    (``float("inf")`` if it overflows, like transformers' ``run_clm`` does).
    Put the answer in ``result``: the last lines give the model back its mode.

    Example:
        >>> perplexity(base_model, tokenized["validation"])
        18.58...
        >>> perplexity(model_that_knows_nothing, tokenized["validation"])   # all 49,152 tokens equally likely
        49152.0...
    """
    was_training = model.training
    model.eval()  # dropout off: measure the model, not a random part of it
    device = next(model.parameters()).device
    # TODO: Which tokens should count towards the average: all of them, or only those with attention_mask == 1?
    #       If one batch holds 100 real tokens and another 2,000, should their losses weigh the same?
    #       Is perplexity exp of the total loss, or exp of the loss per token?
    #       The lines after this TODO use `result`: your code must set it.
    raise todo()
    model.train(was_training)
    return result


def _batch_tensors(rows: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` tensors for one slice of a dataset (a dict of lists).

    Rows of different lengths are padded on the right with id 0 and mask 0, so
    that un-padded data works too; the mask keeps that padding out of the loss.
    """
    ids_rows = rows["input_ids"]
    mask_rows = rows.get("attention_mask") or [[1] * len(ids) for ids in ids_rows]
    width = max(len(ids) for ids in ids_rows)
    input_ids = torch.tensor([list(ids) + [0] * (width - len(ids)) for ids in ids_rows], device=device)
    attention_mask = torch.tensor([list(mask) + [0] * (width - len(mask)) for mask in mask_rows], device=device)
    return input_ids, attention_mask


def end_token_id(tokenizer) -> int | None:
    """The id of the ``[END]`` token if stage 3 added it to this tokenizer, else ``None``.

    (``convert_tokens_to_ids`` would not do: for an unknown token it returns the
    id of the *unknown* token, and generation would stop at that instead.)
    """
    return tokenizer.get_vocab().get(END_MARKER)


def _new_text(tokenizer, new_ids: list[int]) -> str:
    """Decode generated ids, keeping ``[END]`` (even when it is a special token) and cutting after it."""
    eos_ids = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    text = tokenizer.decode([i for i in new_ids if i not in eos_ids], skip_special_tokens=False)
    if END_MARKER in text:
        text = text[: text.index(END_MARKER) + len(END_MARKER)]
    return text


def compare_models(prompt: str, base, finetuned, tokenizer, *, max_new_tokens: int = 120,
                   temperature: float = 0.7, top_p: float = 0.95, seed: int = 0) -> dict:
    """The base and the fine-tuned model continue the same prompt, side by side.

    Both get the same settings and the same seed, so the difference is the
    model's. Both may stop at ``[END]``: on its token id when the tokenizer has
    it as a token (stage 3 added it), and on the text "[END]" too (for a
    tokenizer that spells it as "[", "END", "]"). ``model.generate`` does both:
    ``eos_token_id=[end-of-text id, [END] id]`` and
    ``stop_strings=[END_MARKER], tokenizer=tokenizer``. The base model has never
    seen ``[END]``, so it usually runs until ``max_new_tokens``.

    Args:
        temperature: ``0`` for greedy (the most probable token every time),
            otherwise sampling (stage 6 explains temperature and ``top_p``).
        seed: set before each model generates.

    Returns:
        ``{"prompt", "base", "finetuned", "base_stopped", "finetuned_stopped",
        "base_tokens", "finetuned_tokens"}``: the new text of each model
        (ending with "[END]" when it stopped there), whether it wrote ``[END]``,
        and how many tokens it generated.

    Example:
        >>> compare_models("RECIPE: Tomato Soup\\nINGREDIENTS:", base, finetuned, tokenizer, temperature=0)
        {'prompt': 'RECIPE: Tomato Soup\\nINGREDIENTS:', 'base': ' 1. Tomato soup is a ...',
         'finetuned': ' 4 tomatoes; 1 onion; ...\\n[END]', 'base_stopped': False,
         'finetuned_stopped': True, 'base_tokens': 120, 'finetuned_tokens': 87}
    """
    # TODO: Which ids should end a generation? end_token_id(tokenizer) may be None: then only the text can tell.
    #       generate() returns the prompt's tokens too; how many of them come first?
    #       For a fair race, what must both models share before they generate?
    raise todo()


def format_adherence(text: str) -> bool:
    """Does ``text`` have the three sections ``RECIPE:``, ``INGREDIENTS:``, ``DIRECTIONS:``, in that order?

    Give it the prompt *and* the generation: the prompt holds "RECIPE: …" and
    "INGREDIENTS:", the model must still write the rest. Each label must be at
    the start of a line, as stage 2 writes them.

    Example:
        >>> format_adherence("RECIPE: Toast\\nINGREDIENTS: bread\\nDIRECTIONS: Toast it.\\n[END]")
        True
        >>> format_adherence("RECIPE: Toast\\nDIRECTIONS: Toast it.\\nINGREDIENTS: bread")
        False
    """
    # TODO: Where in the text does each label first start a line? What if one is missing?
    #       "In order" means each label is found after the one before it.
    raise todo()


def stop_rate(generations: list[str]) -> float:
    """The fraction of generations that ended with ``[END]`` by themselves (0.0 for no generations).

    A model that never stops rambles on until ``max_new_tokens``, often into a
    second recipe; a fine-tuned one should stop nearly every time.

    Example:
        >>> stop_rate(["4 eggs; salt\\nDIRECTIONS: Beat.\\n[END]", "4 eggs; salt; 4 eggs; salt; 4 eggs"])
        0.5
    """
    # TODO: Which generations contain the END_MARKER? What is the fraction of an empty list?
    raise todo()


def recipe_title(text: str) -> str:
    """The title of a recipe text ("RECIPE: Banana Bread\\n…" → "Banana Bread"), or the text's first line."""
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return first_line.split("RECIPE:", 1)[1].strip() if "RECIPE:" in first_line else first_line.strip()


def _normalise_title(title: str) -> str:
    """Lower case, letters and digits only, single spaces: "Banana-Bread!" → "banana bread"."""
    return " ".join(re.sub(r"[^\w]+", " ", title.lower()).split())


def memorised_titles(generated: list[str], train_titles: list[str]) -> list[dict]:
    """Generated titles that copy a training title, exactly or nearly.

    A model that writes "Banana Bread" after training on "Banana Bread" may
    have learned the dish — or memorised the page. Many copies, word for word,
    mean it memorised rather than generalised (too many steps, too little data).

    Args:
        generated: generated titles, or generated recipe texts starting with "RECIPE: title".
        train_titles: the titles of the training recipes.

    Compare titles after ``_normalise_title`` (case and punctuation do not make
    a new dish); a pair counts when its ``difflib.SequenceMatcher`` ratio is at
    least ``NEAR_COPY_SIMILARITY``.

    Returns:
        One dict per copied title, in the order given:
        ``{"generated": title, "train_title": the closest training title, "similarity": 0..1}``.

    Example:
        >>> memorised_titles(["Banana bread!", "Moon Cheese Soup"], ["Banana Bread", "Apple Pie"])
        [{'generated': 'Banana bread!', 'train_title': 'Banana Bread', 'similarity': 1.0}]
    """
    # TODO: A whole recipe text starts with "RECIPE: title": which helper above gives its title?
    #       Is "banana bread!" a different dish from "Banana Bread"? Compare normalised titles.
    raise todo()


def off_topic_probe(model, tokenizer, question: str = OFF_TOPIC_QUESTION, *, max_new_tokens: int = 60) -> dict:
    """Ask a question that has nothing to do with cooking: does the model answer it like a recipe?

    The prompt is the question followed by a new line (``question + "\\n"``),
    continued greedily (temperature 0) so the answer is the same every run.
    The answer is "recipe-like" when it contains any recipe label
    (``RECIPE_LABELS``) or ``[END]``. The base model answers (or rambles about)
    the question; a model fine-tuned hard on recipes often writes INGREDIENTS.
    Fine-tuning shifts every probability, not only the ones for recipe prompts.

    Returns:
        ``{"question", "answer", "recipe_like"}``.

    Example:
        >>> off_topic_probe(finetuned, tokenizer)
        {'question': 'How do I reverse a list in Python?',
         'answer': 'INGREDIENTS: 1 list; 1 python ...', 'recipe_like': True}
    """
    # TODO: Greedy generation is do_sample=False; which part of the output is the answer, not the question?
    #       Which strings in the answer would give a recipe away?
    raise todo()
