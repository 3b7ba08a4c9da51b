"""Stage 3 — Tokenizing: padding, truncation, and one token for [END].

The model never sees text, only token ids. A *token* is a piece of a word
from the tokenizer's fixed vocabulary (49,152 pieces for SmolLM2): common
words are one token (" flour"), rarer ones are split into sub-words
("Isombe" → "Is" + "om" + "be"), and a space is part of the token after it.
Our recipes average about 1.5 tokens per word: 150 words, some 225 tokens.

Three problems stand between formatted recipes and a training batch:

1. **A batch is a rectangle.** The model processes many recipes at once as
   one tensor of shape ``(batch, length)``; every row must be equally long.
   *Padding* fills short rows with a filler token (the *pad token*), and the
   *attention mask* (1 = real token, 0 = padding) tells the model and the
   loss to ignore the filler. GPT-2's tokenizer has no pad token at all; the
   usual fix, as in the original assignment, is to reuse the end-of-sequence
   token. (SmolLM2 already does that: its pad token *is* its eos token.)
2. **Memory and time grow with length.** *Truncation* cuts every recipe to at
   most ``max_length`` tokens. It costs something: the cut part is never
   learned, and a cut recipe loses its last line, ``[END]`` — so the model
   sees fewer examples of *stopping*. Measured with this reference on all
   3,011 valid Wikibooks recipes (stage 2's filter, SmolLM2's tokenizer with
   ``[END]`` added): median 205 tokens, mean 224, longest 776; 943 recipes
   (31 %) are longer than 256 and lose their ``[END]``, 48 (1.6 %) are longer
   than 512. Padding, the other way round, fills 23 % of a 256-token batch.
   ``token_length_stats`` measures it for your data; the dashboard draws the
   histogram and the cut.
3. **``[END]`` must be one token.** As plain text it is three tokens, "[",
   "END", "]", and "[" also starts other things; the model would have to learn
   a three-step ending, and generation could not stop on one token id. Added
   as a *special* token it becomes one new id that is never split and that
   ``decode(..., skip_special_tokens=True)`` hides. A new token needs a new
   row in the model's embedding table: *resize the embeddings*, or that id
   points past the end of the table. transformers then says "The new
   embeddings will be initialized from a multivariate normal distribution…":
   the new row starts as random numbers near the average of the other rows,
   which is what we want. (Why not simply stop at eos? Because the
   pad token *is* eos here, and padding is left out of the loss: the model
   would never be taught to produce it.)

Fill in the TODOs, top to bottom, then run ``.venv/bin/python -m pytest checks/stage3``
in the project folder.
"""
from __future__ import annotations

import statistics

from lessons.engine.constants import END_MARKER
from lessons.engine.todo import ___, todo  # noqa: F401 - the blanks and TODOs you fill in

MAX_LENGTH = 256  # keeps 69 % of the recipes whole (with their [END]); a CPU training step stays near 5 s


def configure_tokenizer(tokenizer, model) -> dict:
    """Make the tokenizer and the model ready for recipes; change both in place and report what changed.

    1. If the tokenizer has no pad token (GPT-2 has none), use its eos token as pad.
    2. Add ``END_MARKER`` ("[END]") as a *special* token, keeping any special
       tokens it already has: ``tokenizer.add_special_tokens({"extra_special_tokens":
       [END_MARKER]}, replace_extra_special_tokens=False)``.
    3. Give the model one embedding row per token: ``model.resize_token_embeddings(len(tokenizer))``,
       and tell its config which id is padding.

    Returns a report::

        {"pad_token": "<|im_end|>", "pad_token_id": 2, "pad_was_missing": False,
         "end_token": "[END]", "end_token_id": 49152,
         "vocab_before": 49152, "vocab_after": 49153, "embedding_rows": 49153}

    Calling it twice changes nothing the second time.
    """
    ### BEGIN SOLUTION
    ### HINT: What is tokenizer.pad_token for GPT-2, and which token already means "the text is over"?
    ### HINT: tokenizer.add_tokens would add [END] too: what does add_special_tokens promise that it does not?
    ### HINT: The tokenizer now has one more token than the model has embedding rows: which model method fixes that?
    ### PARTIAL: vocab_before = len(tokenizer)
    ### PARTIAL: pad_was_missing = tokenizer.pad_token is None
    vocab_before = len(tokenizer)
    pad_was_missing = tokenizer.pad_token is None
    if pad_was_missing:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.add_special_tokens({"extra_special_tokens": [END_MARKER]}, replace_extra_special_tokens=False)
    model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    return {
        "pad_token": tokenizer.pad_token,
        "pad_token_id": tokenizer.pad_token_id,
        "pad_was_missing": pad_was_missing,
        "end_token": END_MARKER,
        "end_token_id": tokenizer.convert_tokens_to_ids(END_MARKER),
        "vocab_before": vocab_before,
        "vocab_after": len(tokenizer),
        "embedding_rows": model.get_input_embeddings().weight.shape[0],
    }
    ### END SOLUTION


def tokenize_function(examples: dict, tokenizer, max_length: int = MAX_LENGTH) -> dict:
    """Turn a batch of formatted recipes into equal-length rows of token ids.

    A *batched* map function: ``examples["text"]`` is a list of texts, and the
    result holds one list per text. Use it as
    ``splits.map(tokenize_function, batched=True, remove_columns=["title", "text"],
    fn_kwargs={"tokenizer": tokenizer, "max_length": 256})``.

    Every row is exactly ``max_length`` long: longer texts are truncated,
    shorter ones padded with the pad token (attention mask 0 there).

    Returns ``{"input_ids": [[...], ...], "attention_mask": [[1, 1, ..., 0, 0], ...]}``.

    Example:
        >>> out = tokenize_function({"text": ["RECIPE: Toast\\n[END]"]}, tokenizer, max_length=8)
        >>> out["input_ids"][0], out["attention_mask"][0]
        ([44052, 33592, 42, 1626, 500, 198, 49152, 2], [1, 1, 1, 1, 1, 1, 1, 0])
    """
    ### BEGIN SOLUTION
    ### HINT: The tokenizer takes a list of texts at once; which of its options cut and fill every row to one length?
    ### HINT: padding=True pads to the longest text in the batch: is that max_length?
    ### PARTIAL: encoded = tokenizer(examples["text"], ...)
    encoded = tokenizer(examples["text"], truncation=True, padding="max_length", max_length=max_length)
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    ### END SOLUTION


def token_length_stats(texts, tokenizer, max_length: int = MAX_LENGTH) -> dict:
    """How long the recipes are in tokens, and what truncating them to ``max_length`` costs.

    Returns a dict (the dashboard draws ``lengths`` as a histogram with a line at ``max_length``):
        * ``lengths``: tokens per text, untruncated, in the order given;
        * ``count``, ``min``, ``median``, ``mean``, ``max`` of those lengths;
        * ``max_length``;
        * ``longer_than_max``: how many texts are cut, ``share_longer`` the same as a share (0 to 1);
        * ``lost_end_marker``: how many texts no longer end with ``[END]`` once truncated;
        * ``tokens_cut``: tokens thrown away by truncation, all texts together;
        * ``padding_share``: the share of a max_length-padded batch that is padding.

    Tokenize exactly as ``tokenize_function`` does (the same special tokens),
    just without padding or truncation, to see the real lengths.

    Example:
        >>> stats = token_length_stats(texts, tokenizer, max_length=256)
        >>> stats["median"], stats["share_longer"], stats["lost_end_marker"]   # all 3,011 Wikibooks recipes
        (205, 0.3132, 943)
    """
    texts = list(texts)
    if not texts:
        raise ValueError("token_length_stats needs at least one text")
    ### BEGIN SOLUTION
    ### HINT: len(ids) for each text's input_ids gives its length in tokens: with or without truncation?
    ### HINT: A text loses its [END] exactly when what is left after truncation no longer ends with [END]'s ids.
    ### PARTIAL: lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    ### PARTIAL: kept = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    kept = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    end_ids = tokenizer(END_MARKER, add_special_tokens=False)["input_ids"]
    lost_end = sum(ids[-len(end_ids):] != end_ids for ids in kept)
    longer = sum(length > max_length for length in lengths)
    return {
        "lengths": lengths,
        "count": len(lengths),
        "min": min(lengths),
        "median": statistics.median(lengths),
        "mean": round(statistics.fmean(lengths), 1),
        "max": max(lengths),
        "max_length": max_length,
        "longer_than_max": longer,
        "share_longer": round(longer / len(lengths), 4),
        "lost_end_marker": lost_end,
        "tokens_cut": sum(max(0, length - max_length) for length in lengths),
        "padding_share": round(sum(max(0, max_length - length) for length in lengths) / (max_length * len(lengths)), 4),
    }
    ### END SOLUTION
